"""Every sentence the bot says to a person, zh-CN first: short, plain and kind."""

from __future__ import annotations

HELP = (
    "这是「民意」问卷助手，用来听取您对本项目的意见。\n\n"
    "/start — 开始或继续填写\n"
    "/back — 回到上一题\n"
    "/mydata — 查看我填写的内容\n"
    "/delete — 撤回并删除我的数据\n"
    "/help — 查看帮助\n\n"
    "可以直接点按钮，也可以打字回答。"
)
ASK_CODE = "您好！请扫描网格员提供的二维码，或直接输入项目编码（例如 RW2026-G01）。"
CODE_NOT_FOUND = "没有找到这个编码，请核对后再输入一次（例如 RW2026-G01），或扫描网格员的二维码。"
LINK_INVALID = "这个链接无效或已过期。请向网格员索取新的二维码，或直接输入项目编码（例如 RW2026-G01）。"
NO_SURVEY = "这个项目暂时没有可以填写的问卷，请稍后再试，或联系您的网格员。"
GROUP_HINT = "为保护您的隐私，请私聊我填写问卷：点我的头像，再点「发消息」。"
UNKNOWN_COMMAND = "没有这个命令。发送 /help 查看可以用的命令。"
ERROR = "抱歉，系统刚才出了点问题，您的回答没有丢失。请稍后再发一次。"

WELCOME_BACK = "欢迎回来，我们接着上次的地方继续。"
ALREADY_SUBMITTED = "您已经提交过本项目的问卷，回执号 {receipt}。谢谢您！\n发送 /mydata 查看，/delete 撤回。"

CONSENT_TAIL = "请选择是否同意："
CONSENT_AGREED = "✓ 已同意"
CONSENT_ANONYMOUS = "✓ 匿名填写"
CONSENT_REASK = "请点下面的按钮，选择是否同意。"
DECLINED = "没关系，谢谢您抽出时间。我们没有保存您的任何信息。如果改变主意，可以随时再扫码。"
DECLINED_MARK = "✗ 不同意"

PROGRESS = "（第 {n}/{total} 题）"
OPTIONAL_MARK = "（选填）"
MULTI_HINT = "可以多选，选好后点「完成」。"
TEXT_HINT = "请直接打字回复，{limit}字以内。"
NUMBER_HINT = "请输入数字。"
PREVIOUS_ANSWER = "您之前的回答：{answer}"
CHOSEN = "✓ {answer}"

BUTTON_DONE = "✅ 完成"
BUTTON_SKIP = "跳过"
BUTTON_KEEP = "保持原答案"
BUTTON_YES_PHONE = "愿意留电话"
BUTTON_NO_PHONE = "不用了"
BUTTON_EDIT = "✏️ 修改答案"
BUTTON_SUBMIT = "✅ 确认提交"
BUTTON_DELETE_YES = "确认删除"
BUTTON_DELETE_NO = "取消"

REASK_CHOICE = "请点下面的按钮选择，或者打出选项的名字。"
REASK_SCALE = "请点下面的按钮，或输入 {low} 到 {high} 之间的数字。"
REASK_MULTI = "没看懂您选的是哪几项。请点按钮勾选，选好后点「完成」。"
REASK_MEDIA = "抱歉，我只能看懂文字和按钮，请打字或点按钮回答。"
REASK_EMPTY = "内容是空的，请写几句话再发送。"
REASK_TOO_LONG = "您写了 {length} 个字，最多 {limit} 个字，请精简一些再发。"
REASK_NUMBER = "请输入一个数字，例如 3。"
REASK_INTEGER = "请输入整数，例如 3。"
REASK_RANGE = "请输入 {low} 到 {high} 之间的数字。"
REASK_PHONE = "号码好像不对。请输入11位手机号（如 13800138000）或带区号的座机（如 0571-87654321）。"
REASK_PHONE_CONSENT = "请点「愿意留电话」或「不用了」。"
TOO_FEW = "请至少选择 {n} 项。"
TOO_MANY = "最多选择 {n} 项，请先取消一项。"
STALE_BUTTON = "这个按钮已经过期了，请回答最新的问题。"
FIRST_QUESTION = "已经是第一题了。"

SUMMARY_HEAD = "请核对您的回答："
SUMMARY_TAIL = "没问题就点「确认提交」；想改哪一题，点「修改答案」。"
PICK_EDIT = "想修改哪一题？"
SUBMITTED = (
    "提交成功，谢谢您！\n您的回执号：{receipt}\n"
    "我们会认真阅读每一条意见。发送 /mydata 可以查看，/delete 可以撤回。"
)
SUBMITTED_MARK = "✓ 已提交"

MYDATA_NONE = "我们没有保存您的任何数据。"
MYDATA_HEAD = "我们保存的您的数据："
MYDATA_ITEM = "\n\n【{title}】回执号 {receipt}，{status}"
STATUS_WORDS = {"in_progress": "填写中", "submitted": "已提交", "withdrawn": "已撤回"}
DELETE_NONE = "我们没有保存您的任何数据，不需要删除。"
DELETE_CONFIRM = "确定要撤回问卷并删除您的全部回答吗？删除后无法恢复。"
DELETED = "已撤回并删除您的全部回答。谢谢您曾经参与。"
DELETE_KEPT = "好的，什么都没有删除。"
DELETED_MARK = "✓ 已删除"
KEPT_MARK = "✓ 已取消"

DEFAULT_CRISIS_LINE = "12356（全国心理援助热线，24小时）"
CARE = (
    "看到您写的话，我们很担心您。您说的事情已经记下，工作人员会尽快联系您。\n"
    "如果您现在很难受，请马上拨打 {line}，遇到危险请拨 110 或 120。\n"
    "您不是一个人，我们愿意帮您想办法。"
)

# --- staff: grid workers, assessors, admins ----------------------------------------------------------

ROLE_WORDS = {"gridworker": "网格员", "assessor": "评估人员", "admin": "管理员", "resident": "居民"}
HELP_GRIDWORKER = (
    "网格员可以用的命令：\n\n"
    "/qr — 我的网格二维码海报（扫码填写的问卷记在您名下）\n"
    "/push — 给网格里已扫码的居民发填写提醒\n"
    "/progress — 各网格填写进度和还没填完的居民\n"
    "/visit — 上门代填一户的问卷\n"
    "/cancel — 取消进行中的代填\n"
    "/help — 查看帮助\n\n"
    "收到紧急提醒时，请尽快核实，并点「确认收到」。"
)
HELP_ASSESSOR = (
    "评估人员可以用的命令：\n\n"
    "/progress — 各项目各网格的填写进度\n"
    "/duty on — 值班，接收紧急提醒\n"
    "/duty off — 下班，不再接收紧急提醒\n"
    "/help — 查看帮助"
)
HELP_ADMIN = (
    "管理员可以用的命令：\n\n"
    "/progress — 各项目各网格的填写进度\n"
    "/help — 查看帮助\n\n"
    "无人确认或被上报的紧急提醒会发给您。"
)
INVITE_ACCEPTED = "欢迎{name}！您现在是「民意」的{role}。{grids}\n发送 /help 查看可以用的命令。"
INVITE_GRIDS = "\n负责网格：{grids}。"
INVITE_REFUSED = {
    "unknown": "这个邀请码无效，请核对后再试，或向管理员索取新的邀请码。",
    "used": "这个邀请码已经用过了，每个邀请码只能用一次。请向管理员索取新的邀请码。",
    "expired": "这个邀请码已过期，请向管理员索取新的邀请码。",
}
NO_GRIDS = "您还没有负责的网格，请联系管理员。"
NOT_YOUR_GRID = "没有找到您负责的网格「{code}」。您负责的网格：{grids}"
PICK_GRID = "您负责多个网格，请选择："
BUTTON_ALL_GRIDS = "全部网格"

QR_CAPTION = (
    "「{title}」{grid}的二维码海报，可以打印张贴。扫码填写的问卷会记在您名下。\n"
    "链接：{link}\n居民也可以在机器人里输入编码：{code}"
)
POSTER_HEADLINE = "扫码参与意见征集"
POSTER_CODE = "也可以在机器人里输入编码：{code}"
POSTER_FOOTER = "您的意见将用于社会稳定风险评估，个人信息依法保护。"

PUSH_CONFIRM = (
    "「{title}」{grids}\n已扫码并同意的居民 {everyone} 人，其中还没提交的 {unanswered} 人。\n"
    "要发给谁？{quiet}"
)
PUSH_QUIET_NOTE = "\n（{start}–{end} 夜间不发送，顺延到 {end} 以后。）"
BUTTON_PUSH_UNANSWERED = "发给未提交的 {n} 人"
BUTTON_PUSH_ALL = "发给全部 {n} 人"
BUTTON_CANCEL = "取消"
PUSH_NOBODY = "这些网格里还没有可以推送的居民：居民要先扫码并同意，才能收到提醒。"
PUSH_STARTED = "好的，开始给 {n} 位居民发送。进度见下一条消息。"
PUSH_CANCELLED = "已取消，什么都没有发送。"
PUSH_STATUS = "📣 推送进度「{title}」\n已发送 {sent}/{total}"
PUSH_STATUS_BLOCKED = "\n已屏蔽机器人 {n} 人"
PUSH_STATUS_FAILED = "\n未能送达 {n} 人"
PUSH_STATUS_QUIET = "\n🌙 夜间暂停，{time} 以后继续"
PUSH_STATUS_DONE = "\n✓ 推送完成"
PUSH_INVITE = (
    "您好！「{title}」正在听取居民意见，您的意见很重要。\n"
    "还没填完的，发送 /start 就能接着填；已经提交的，谢谢您，也欢迎转告邻居扫码参与。"
)
PUSH_REMINDER = "您好！「{title}」的问卷您还没有填完。发送 /start 就能从上次的地方接着填，只要几分钟。"
BUTTON_OPT_OUT = "不再接收提醒"
OPTED_OUT = "好的，以后不再给您发提醒。"
OPTED_OUT_MARK = "✓ 已关闭提醒"

PROGRESS_HEAD = "📊 填写进度"
PROGRESS_GRID = (
    "\n\n【{name}】{households} 户\n已开始 {started} · 已提交 {submitted}（其中代填 {visits}）· 回收率 {rate}"
)
PROGRESS_NO_RATE = "—"
PROGRESS_UNFINISHED_HEAD = "\n还没填完的（可上门走访）："
PROGRESS_UNFINISHED = "\n· {receipt}：已答 {answered} 题，最后填写 {when}"
PROGRESS_NONE_UNFINISHED = "\n没有填到一半的居民。"
PROGRESS_NOTHING = "还没有可以查看的网格。"

VISIT_ASK_HOUSEHOLD = (
    "上门代填「{title}」{grid}。\n请输入这户的标签，例如 3栋2单元101 或您名册上的编号（不要写姓名和电话）。\n"
    "发送 /cancel 取消。"
)
VISIT_HOUSEHOLD_BAD = "请输入 1 到 40 个字的标签，例如 3栋2单元101。"
VISIT_ASK_RESPONDENT = "受访人是这户的什么人？"
VISIT_RESPONDENTS = (
    ("head", "户主本人"),
    ("spouse", "配偶"),
    ("family", "其他家庭成员"),
    ("tenant", "租户"),
    ("other", "其他"),
)
VISIT_RESPONDENT_MARK = "✓ 受访人：{respondent}"
VISIT_INTRO = "请把下面的告知内容读给受访人听，对方同意后再点按钮，然后按对方的回答逐题填写。"
VISIT_DONE = (
    "代填已提交（{household}），回执号 {receipt}。\n"
    "请这户居民用自己的手机打开下面的链接确认内容：\n{link}"
)
VISIT_CANCELLED = "已取消这次代填，没有保存任何回答。"
VISIT_NOTHING = "现在没有进行中的代填。"
VISIT_BUSY = "您有一份代填还没完成（{household}）。请先填完，或发送 /cancel 取消。"
CONFIRM_VISIT = (
    "网格员{worker}于 {date} 上门时，替您家（{household}）填写了「{title}」问卷：\n{answers}\n\n内容对吗？"
)
BUTTON_CONFIRM_VISIT = "✅ 内容无误"
BUTTON_DISPUTE_VISIT = "有不对的地方"
VISIT_CONFIRMED = "谢谢您的确认！发送 /mydata 可以随时查看，/delete 可以撤回。"
VISIT_DISPUTED = "收到，我们会请网格员再和您核实。您也可以自己重新填写：发送 /start 后输入编码 {code}。"
VISIT_DISPUTED_WORKER = "⚠️ 代填 {receipt}（{household}）的居民说内容有不对的地方，请再联系核实。"
VISIT_ALREADY_DONE = "这份代填已经确认过了，谢谢您。"
VISIT_CONFIRMED_MARK = "✓ 已确认"
VISIT_DISPUTED_MARK = "✓ 已反馈有误"

SIGNAL_WORDS = {
    "collective_petition": "集体上访",
    "gathering": "聚集围堵",
    "blocking": "堵路拦车",
    "sit_in": "静坐、拉横幅",
    "mobilising": "串联动员",
    "obstructing_works": "阻挠施工",
    "violence": "暴力威胁",
    "self_harm": "自伤自杀风险（请先关心对方安全）",
    "media_escalation": "找媒体、网上曝光",
}
ALERT = (
    "🚨 紧急情况提醒\n类型：{signals}\n项目：{title}\n网格：{grid}\n时间：{time}\n内容：{text}\n\n"
    "请尽快核实处置，处理后点「确认收到」。"
)
ALERT_NO_GRID = "（未关联网格）"
ALERT_TIMEOUT_HEAD = "⏰ 这条紧急提醒 {minutes} 分钟内无人确认：\n\n"
ALERT_ESCALATED_HEAD = "⬆️ {name}请求上报：\n\n"
BUTTON_ACK = "✅ 确认收到"
BUTTON_ESCALATE = "⬆️ 上报"
ALERT_ACKED_BY_YOU = "\n\n✓ 您已确认收到"
ALERT_ACKED_BY = "\n\n✓ {name}已确认收到（{time}）"
ALERT_ACK_TOAST = "已确认，谢谢。"
ALERT_ALREADY_ACKED = "{name}已经确认过了。"
ALERT_ESCALATED_TOAST = "已上报给管理员。"
ALERT_ALREADY_ESCALATED = "已经上报过了。"
ALERT_ESCALATED_MARK = "\n\n⬆️ 已上报管理员"
SOMEONE = "一位同事"
DUTY_ON = "您现在值班，会收到紧急提醒。发送 /duty off 下班。"
DUTY_OFF = "您已下班，不再收到紧急提醒。发送 /duty on 上班。"
DUTY_ASK = "您现在{state}。发送 /duty on 上班，/duty off 下班。"
DUTY_STATES = {True: "值班", False: "不值班"}

GRIEVANCE_NOTICE = "您好！关于您在「{title}」问卷中反映的意见：\n{status}{note}\n谢谢您的参与。"
GRIEVANCE_NOTE = "\n说明：{note}"
GRIEVANCE_STATUS = {
    "received": "已收到并登记，评估人员会认真研究。",
    "forwarded": "已转交相关部门处理。",
    "in_progress": "相关部门正在处理。",
    "resolved": "问题已经解决。",
    "adopted": "您的意见已被采纳。",
    "explained": "相关部门已作出解释说明。",
    "not_adopted": "经研究，您的意见暂未被采纳。",
}
GRIEVANCE_STATUS_OTHER = "处理情况有了新进展。"
