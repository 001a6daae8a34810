"""Urgent-signal rules: high-recall patterns for threats of collective action, violence and self-harm."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from nlp.tokenize import fold_with_offsets

__all__ = ["SIGNAL_TYPES", "Escalation", "SignalMatch", "detect"]

SIGNAL_TYPES: tuple[str, ...] = (
    "collective_petition",
    "gathering",
    "blocking",
    "sit_in",
    "mobilising",
    "obstructing_works",
    "violence",
    "self_harm",
    "media_escalation",
)

# Places residents go to press a claim; shared by several signal patterns.
_OFFICE = (
    r"(?:政府|镇政府|乡政府|区政府|县政府|市政府|省政府|镇上|镇里|乡里|县里|区里|市里|街道办?|村委会?|"
    r"居委会?|指挥部|项目部|征收办|拆迁办|信访局|信访办|大门口?|门口|工地|现场|施工队|开发商|公司)"
)
_ROAD = r"(?:路|马路|公路|大路|路口|国道|省道|高速|高速路|铁路|桥|桥头|村口|大门|校门|进出口|出入口)"
_WORKS = r"(?:施工|开工|动工|干活|进场|进村|动土|开挖|挖|拆|修|建|打桩|测量|丈量|铺管|架线|拉线|作业)"
_MACHINE = r"(?:挖掘机|挖机|勾机|铲车|推土机|吊车|机器|设备|工程车|渣土车|施工车|车辆|车子|车)"

# Written in simplified, lower-case, whitespace-free form: the text is folded the same way first.
# Recall comes first: a person confirms every flag, but a missed threat reaches nobody.
_C = r"[^,.;!?，。；！？\n]"  # any character inside the same clause
_PATTERNS: dict[str, tuple[str, ...]] = {
    "collective_petition": (
        r"(?:集体|联名|一起|组团|越级|群体|成群结队)(?:去|到)?(?:上访|信访|告状|上告)",
        r"(?:进京|赴京|去北京|到北京|上北京|进北京)(?:上访|信访|告状|告|反映|讨说法)?",
        r"北京(?:上访|信访|告状|告|反映|讨说法)",
        r"(?:去|到|上|跑|找)(?:省里|省城|省会|省政府|省信访局|省委|中央|国务院|国家信访局|中纪委|巡视组)",
        r"(?:去|到|上|跑|找)省" + _C + r"{0,4}(?:厅|局|委|办)",
        r"告到(?:省里|北京|中央|国务院|上面|底|市里|省)",
        r"(?:去|到|往)上面(?:找|告|反映)|往上(?:告|找|反映)|找上面",
        r"(?:上访|信访|告状|越级访|非访|缠访|闹访|进京访)",
        r"(?:一级一级|层层)(?:往上)?(?:告|反映)",
    ),
    "gathering": (
        r"(?:聚集|聚众|聚着|围堵|围攻|围住|包围|围在|围着(?!墙)|冲击|闹事|大闹|去闹|来闹|闹一闹|集合)",
        r"冲(?:进|到|上)" + _OFFICE,
        r"(?:一起|全村|整村|全组|全小区|大家|所有人|业主们|村民们|家长们|好多人|很多人|都|聚)(?:都)?"
        + _C
        + r"{0,4}(?:去|到|上|冲|在|往)"
        + _C
        + r"{0,8}(?:门口|"
        + _OFFICE[3:],
        r"围了" + _C + r"{0,3}(?:好多|很多|一群|几十|上百|几百|一帮)",
        r"把" + _C + r"{0,8}(?:围|包围|围住)(?:了|住|起来)",
        r"(?:去|到)" + _OFFICE + r"(?:讨说法|要说法|讨个说法|要个说法|闹|坐着|守着|堵着|要钱|讨钱)",
        r"(?:几十号人|几十个人|几十户|上百人|上百号人|好几百人|几百人|几百号人|上千人|一群人|一帮人|一伙人)",
        r"(?:一起|集体)(?:去)?" + _C + r"{0,4}散步",
        r"(?:讨说法|要说法|讨个说法|要个说法)",
        r"堵(?:住)?(?:政府|大门|门口|办公室|领导|书记|镇长|县长|干部)",
    ),
    "blocking": (
        r"(?:堵|拦|截|挡|占)(?:住|了|上|断|死)?" + _ROAD,
        r"封(?:住|死)" + _ROAD,
        r"把" + _C + r"{0,6}(?:路|路口|马路|大门|公路|高速|国道|桥|车|村口|厂门|校门|工地)" + _C + r"{0,6}"
        r"(?:堵|封|拦|截|挡)(?:住|了|上|死|下)",
        r"(?:拦|挡|截|扣)(?:住|下|了)?(?:一辆|他们的|公交)?" + _MACHINE,
        r"堵(?:住|了)?(?:他们的)?(?:挖掘机|挖机|铲车|推土机|工程车|渣土车|施工车|运输车|垃圾车|公交车)",
        r"(?:拦车|拦路|拦下|卧轨|躺在路上|躺路上|躺马路|躺在马路|躺在车前|躺车前|躺在车底|睡在路上|躺着|堵死)",
        r"一辆" + _C + r"{0,4}(?:拦|堵|扣|砸)一辆|(?:敢来|来了|来)就(?:堵|拦)",
        r"横在" + _C + r"{0,6}" + _ROAD,
        r"堵路|堵马路|堵高速|堵国道",
    ),
    "sit_in": (
        r"(?:静坐|坐在门口|坐在政府|坐到政府|坐着不走|赖着不走|守在门口)",
        r"(?:门口|大门|大厅|政府|办公室|楼下|指挥部|拆迁办)(?:坐|守|躺|跪|蹲)",
        r"(?:拉|挂|打|扯|举|拿|做)(?:起|出|上|着)?(?:横幅|条幅|标语|牌子|白布|大字报)",
        r"(?:横幅|条幅|标语)",
        r"(?:下跪|跪下|跪着|跪在|磕头|绝食|披麻戴孝|抬棺|举牌)",
    ),
    "mobilising": (
        r"(?:串联|串连|煽动|鼓动)",
        r"(?:发动|号召|动员|召集|组织)(?:大家|村民|群众|乡亲|业主|全村|全组|起来|人|一下|了)",
        r"(?:每户|每家|每村|每组|每班|每个村|家家户户)" + _C + r"{0,8}(?:个人|人|代表|车|台)",
        r"(?:建群|拉群|建了个群|拉了个群|建个群|拉个群|拉人|叫上|喊上|约上|凑人|召集人|进群|二群|加这个群|接龙|凑够)",
        r"拉" + _C + r"{0,6}进" + _C + r"{0,2}群",
        r"(?:转发|扩散|转告|传单|挨家挨户|通知到每|通知了全|统一行动|一起行动|统一发|一起转|一起刷|喊大家|叫大家)",
        r"(?:人越多越好|人多力量大|人多他们|人多了他们)",
        r"联名(?:上访|去|告|到)|(?:征集|收集|组织)签名|按手印|摁手印",
        r"(?:全村|全组|全小区|整个村|整个小区|所有人|大家|乡亲们|业主们)(?:一起|都|全)(?:去|来|上|出动|行动|站出来)",
    ),
    "obstructing_works": (
        r"(?:不让|不许|不准|别想|休想|甭想)" + _C + r"{0,8}(?:动|" + _WORKS[3:],
        r"(?:阻止|阻挠|阻拦|阻工|阻碍)",
        r"(?:拦着|挡着|拦住|挡住)(?:不让|他们|施工队|工人|挖掘机|机器|推土机|车|进场)",
        r"(?:谁敢|看谁敢|敢来)(?:来)?" + _WORKS,
        r"(?:砸|扣|推|掀|烧)(?:了|掉|翻|下)?(?:他们的)?" + _MACHINE,
        _MACHINE + r"(?:被)?(?:围|拦|挡|扣|堵)(?:住|了|下)",
        r"(?:挖掘机|挖机|勾机|铲车|推土机|吊车|工程车|施工车|机器|设备|施工队)" + _C + r"{0,4}"
        r"(?:进不来|进不去|开不进|过不去|动不了)",
        r"躺在" + _MACHINE + r"(?:前面|前头|下面|底下)?",
        r"躺在" + _C + r"{0,3}(?:地里|地头|路上|门口|前面|前头)",
        r"(?:守在|守着|站在地里|站在前面|站在前头|抱着树|抱着|敲锣|来一次赶一次|赶走他们|把他们赶|轰走|赶出去|别想开工|开不了工)",
        r"(?:逼停|叫停|让他们停工)",
    ),
    "violence": (
        r"(?:拼了(?!命|一|好|半)|拼命|跟他们拼|和他们拼|跟他拼|拼个|拼到底|同归于尽|鱼死网破|你死我活|玉石俱焚|血溅|见血)",
        r"(?:带刀|拿刀|动刀|菜刀|砍刀|刀子|斧头|棍子|棒子|镰刀|铁锹)",
        r"(?:炸药|雷管|炸(?:掉|平|毁|死)|炸了(?:他|你|它|政府|工地|厂|村委)|"
        r"(?:带|拿|绑|弄|搞|扔|浇|泼|背)(?:个|桶|着)?(?:炸弹|汽油|煤气罐|液化气))",
        r"(?:放火|纵火|点火|就点了|汽油(?!味)|一把火|烧了(?:他|你|政府|工地|厂|村委)|烧死)",
        r"(?:砍人|砍死|砍了他|砍他|杀人|杀了|杀死|杀他|弄死|打死|捅死|捅了|宰了|废了他|打断)",
        r"(?:动手|打人|干一架|打一架|干仗|跟他们干|和他们干|揍他|揍死|报复|推倒|打伤|打破|头破血流|打起来|打了起来|"
        r"推搡|被打|殴打|横着出去)",
        r"砸(?:了|烂|掉)?(?:他|你|村委|政府|办公室|车)",
        r"把" + _C + r"{0,6}炸(?:了|掉|平|毁)",
        r"找(?:他|他们|你|你们)算账",
    ),
    "self_harm": (
        r"(?:不想活|活不下去|活不成|没法活|没活路|不活了|活够了|活着没意思|不如死了|死了算了|"
        r"死了得了|一死了之|一了百了|以死|用命|拿命|豁出命|死给|死在|吊死|寻死|轻生|自杀|自尽|了结自己|结束自己|"
        r"跳楼(?!梯)|跳河|跳江|跳水库|跳井|跳下去|农药(?!厂|残留|味|店|化肥|包装)|喝农药|吃农药|喝了农药|买农药|喝药|吃药死|吃安眠药|安眠药|敌敌畏|百草枯|"
        r"上吊|割腕|自焚|撞死|碰死|死路一条|去死|(?<!得)想死|不活)",
        r"活着(?:还)?(?:有|没)(?:啥|什么)?意思",
        r"从我(?:身上|的身上)(?:压|碾|开|轧|踩)",
        r"躺在" + _MACHINE + r"(?:前面|前头|下面|底下)",
        r"(?:don'?t|do not|dont)(?:really)?wanttolive|wanttodie|killmyself|suicid|endmylife|endit",
    ),
    "media_escalation": (
        r"(?:上热搜|热搜|曝光|今日说法|焦点访谈|央视|都市频道|电视台|南方周末|公众号|自媒体|大v|网红|外媒|境外媒体|"
        r"人民网|留言板|让全国人民|全国都知道|闹大|越闹越大|网友|上新闻|上电视|上了新闻)",
        r"(?:找|叫|请|联系|打给|告诉|爆料给|投给|投稿给|寄给)(?:了)?"
        + _C
        + r"{0,4}(?:记者|媒体|电视台|报社|报纸|频道)",
        r"(?:发|传|放|挂|晒|捅|贴)(?:到|在|上)?(?:了)?(?:网上|网络|网)|网上发",
        r"(?:发|上|传|拍|放|晒|投)" + _C + r"{0,4}(?:抖音|快手|微博|头条|视频号|小红书|b站)",
        r"(?:抖音|快手|微博|头条|视频号)(?:上)?(?:发|曝光|直播)",
        r"(?:直播|投给|投稿|记者|报社|爆料|澎湃|环保组织)",
        r"发到(?:了)?" + _C + r"{0,3}群|转发(?:了)?(?:好几|上|几|好)?(?:百|千|万)",
    ),
}

# A consequence marker ends the scope of a negation written before it: 再不解决就去堵路 is a threat.
_CONSEQUENCE = re.compile(
    r"(?:就|便|才|只能|只好|只有|那就|否则|不然|要不然|要不|的话|大不了|干脆|逼得|逼急了|逼我们|也要|还要|必须|非得|肯定|一定)"
)
# Negation directly governing the action: the negator, then only modal or motion words up to the match.
_NEGATION = re.compile(
    r"(?:不|没|没有|别|未|从未|从没|从不|绝不|决不|并不|并没|不曾|无意|无需|甭|莫|勿)"
    r"(?:会|想|要|打算|准备|愿意|愿|再|用|必|敢|能|可能|至于|是要|是想|是|搞|去|到|来|上|准|需要|想过|考虑|"
    r"打算过|参加|参与|跟着|跟风|一起|集体|同意|主张|支持|计划|希望|喜欢|搞什么|做|弄|闹|走|去搞|组织|"
    r"还|也|都|真|真的|再去|会去|想去|要去|人|有人|人说|说|说要|谁|谁也|那种|一个人|要闹|为了|聚集|闹事)*$"
)
# "不上访不行" and "要不要去上访" negate nothing.
_DOUBLE_NEGATION_AFTER = re.compile(r"(?:是不行|不行|不可|不成|没办法|没有办法|没用了|没别的办法)")
_CONDITIONAL = re.compile(
    r"(?:再不|如果|要是|假如|万一|若|倘若|不然|否则|要不然|的话|逼急|逼得|大不了|除非|不给|不解决|不答复|不处理|不赔)"
)
_CLAUSE_BREAK = re.compile(r"[,.;!?:、，。；！？：…~\n\r\"'“”‘’()（）【】\[\]]")


@dataclass(frozen=True, slots=True)
class SignalMatch:
    """One matched cue: its signal type, where it is in the original text, and whether it was conditional."""

    type: str
    start: int
    end: int
    text: str
    conditional: bool


@dataclass(frozen=True, slots=True)
class Escalation:
    """Urgent yes/no, the signal types found (in SIGNAL_TYPES order) and every non-negated match."""

    urgent: bool
    signals: tuple[str, ...]
    matches: tuple[SignalMatch, ...]

    @property
    def self_harm(self) -> bool:
        """A welfare emergency: the bot answers with care and a crisis line, not only an alert."""
        return "self_harm" in self.signals


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((kind, re.compile("|".join(f"(?:{p})" for p in pats))) for kind, pats in _PATTERNS.items())


def _clause_before(folded: str, start: int) -> str:
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(folded, 0, start)]
    return folded[breaks[-1] if breaks else 0 : start]


def _is_negated(folded: str, start: int, end: int) -> bool:
    prefix = _clause_before(folded, start)
    cut = [m.end() for m in _CONSEQUENCE.finditer(prefix)]
    # A negation governs only the words right before the action; the bound also keeps the regex linear.
    scope = (prefix[cut[-1] :] if cut else prefix)[-12:]
    found = _NEGATION.search(scope)
    if found is None:
        return False
    at = found.start()
    # 要不要/会不会/去不去: an A-not-A question is a consideration, not a refusal.
    if 0 < at < len(scope) - 1 and scope[at] == "不" and scope[at - 1] == scope[at + 1]:
        return False
    return _DOUBLE_NEGATION_AFTER.match(folded, end) is None


def _is_conditional(folded: str, start: int) -> bool:
    sentence_start = max(folded.rfind(ch, 0, start) for ch in "。！？!?.\n")
    return _CONDITIONAL.search(folded, sentence_start + 1, start) is not None


def detect(text: str) -> Escalation:
    """Find urgent signals; negated mentions ("我们不想上访") are dropped, conditional threats kept."""
    folded, offsets = fold_with_offsets(text)
    matches: list[SignalMatch] = []
    for kind, pattern in _compiled():
        for found in pattern.finditer(folded):
            start, end = found.start(), found.end()
            if start == end or _is_negated(folded, start, end):
                continue
            begin, finish = offsets[start], offsets[end - 1] + 1
            conditional = _is_conditional(folded, start)
            matches.append(SignalMatch(kind, begin, finish, text[begin:finish], conditional))
    matches.sort(key=lambda m: (m.start, SIGNAL_TYPES.index(m.type)))
    found_types = {m.type for m in matches}
    signals = tuple(kind for kind in SIGNAL_TYPES if kind in found_types)
    return Escalation(bool(signals), signals, tuple(matches))
