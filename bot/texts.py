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
