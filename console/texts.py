"""Words the console and the assessment file show: names of stages, statuses, roles; notification texts."""

from __future__ import annotations

STAGES = {"preparation": "前期准备（含征收）", "construction": "建设施工期", "operation": "建成运营期"}
ITEM_STATUSES = {"open": "待处置", "mitigating": "化解中", "resolved": "已化解"}
REVIEW_STATUSES = {"pending": "待复核", "confirmed": "已确认", "not_grievance": "不是诉求"}
ROLES = {"assessor": "评估人员", "admin": "管理员", "gridworker": "网格员"}
CHANNELS = {"telegram": "本人填写", "visit": "网格员代填"}
SIGNALS = {
    "collective_petition": "集体上访",
    "gathering": "聚集围堵",
    "blocking": "堵路拦车",
    "sit_in": "静坐横幅",
    "mobilising": "串联组织",
    "obstructing_works": "阻挠施工",
    "violence": "暴力威胁",
    "self_harm": "自伤风险",
    "media_escalation": "媒体曝光",
}

# A risk item's status, as the bot's grievance notices name it (bot/texts.py GRIEVANCE_STATUS words it),
# and the note added in plain words: what is being done and by whom. No names, no internal numbers.
NOTICE_STATUS = {"open": "received", "mitigating": "in_progress", "resolved": "resolved"}
NOTICE_NOTE = "关于“{topic}”，{department}：{measure}。"
NOTIFY_FALLBACK_DEPARTMENT = "相关部门"
NOTIFY_FALLBACK_MEASURE = "具体措施正在制定"


def signal_name(code: str) -> str:
    return SIGNALS.get(code, code)
