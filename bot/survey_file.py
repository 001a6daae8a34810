"""Questionnaire files: read a survey from YAML, check it for every mistake at once, and fingerprint it.

The format (see examples/road-widening.yaml for a full survey)::

    id: road-widening            # 1 to 32 of [A-Za-z0-9_-]
    version: 1                   # positive integer
    title: 人民路拓宽工程意见征询
    intro: |                     # optional; shown to residents before consent
      ...
    consent:
      notice: |                  # PIPL notice: purpose, what is kept, how long, how to withdraw
        ...
      agree: 同意，开始填写         # optional button labels, defaults from bot.questionnaire.Consent
      decline: 不同意
      anonymous: 匿名填写           # optional: omit it to offer no anonymous choice
    questions:
      - id: relation             # 1 to 32 of [A-Za-z0-9_-], unique
        type: single             # single | multi | scale | text | number | phone
        text: 您与本项目的关系是？
        help: 可选一项              # optional hint under the question
        required: true           # default true; false lets the resident skip
        options:                 # single and multi: at least two, each `code: label`
          - owner: 被征收房屋产权人    #   or {code: owner, label: 被征收房屋产权人}
          - tenant: 租户
        when:                    # optional; the question is asked only when ALL clauses hold
          attitude: [oppose, conditional]  # single/multi: one of these codes (a single code is fine)
          necessity: {min: 1, max: 2}      # scale/number: the answer lies in the range

Keys by type, besides id, type, text, help, required and when:

- ``multi``: ``options``, ``min_choices``, ``max_choices``
- ``scale``: ``min``, ``max`` (whole numbers, at most 11 points), ``labels`` (``{1: 完全没必要}``)
- ``text``: ``max_length`` (1 to 4000, default 500), ``grievance`` (true: goes to the risk classifier)
- ``number``: ``min``, ``max``, ``integer`` (default true)
- ``phone``: ``consent`` (required: the separate consent question asked before the number)

A question may only depend on earlier questions, never on text or phone answers. Checks also cover
Telegram's limits: button data (64 bytes), button labels (64 characters) and message length (4096).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.callbacks import CALLBACK_LIMIT, worst_case_length
from bot.questionnaire import (
    CHOICE_KINDS,
    CODE_PATTERN,
    FRAME_RESERVE,
    MESSAGE_LIMIT,
    AnswerValue,
    Condition,
    Consent,
    Option,
    Question,
    QuestionKind,
    Questionnaire,
    normalise,
)

LABEL_LIMIT = 64  # characters of a button label: longer ones are cut off on small phones
MAX_SCALE_POINTS = 11  # 0..10 is the widest scale that still fits a keyboard
MAX_TEXT_LENGTH = 4000  # a longer answer would not fit one Telegram message with its frame
HASH_FORMAT = 1  # bump when the canonical form below changes, so old and new hashes never collide

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))

_TOP_KEYS = ("id", "version", "title", "intro", "consent", "questions")
_TOP_REQUIRED = ("id", "version", "title", "consent", "questions")
_CONSENT_KEYS = ("notice", "agree", "decline", "anonymous")
_COMMON_KEYS = ("id", "type", "text", "help", "required", "when")
_KIND_KEYS: dict[QuestionKind, tuple[str, ...]] = {
    QuestionKind.SINGLE: ("options",),
    QuestionKind.MULTI: ("options", "min_choices", "max_choices"),
    QuestionKind.SCALE: ("min", "max", "labels"),
    QuestionKind.TEXT: ("max_length", "grievance"),
    QuestionKind.NUMBER: ("min", "max", "integer"),
    QuestionKind.PHONE: ("consent",),
}
_QUESTION_KEYS = tuple(dict.fromkeys(_COMMON_KEYS + tuple(itertools.chain(*_KIND_KEYS.values()))))
# A key that belongs to another type often has a sibling that means the same here.
_KIND_HINTS: dict[tuple[QuestionKind, str], str] = {
    (QuestionKind.MULTI, "min"): "min_choices",
    (QuestionKind.MULTI, "max"): "max_choices",
    (QuestionKind.SCALE, "min_choices"): "min",
    (QuestionKind.SCALE, "max_choices"): "max",
    (QuestionKind.NUMBER, "min_choices"): "min",
    (QuestionKind.NUMBER, "max_choices"): "max",
}
_OPTION_KINDS = (QuestionKind.SINGLE, QuestionKind.MULTI)


@dataclass(frozen=True)
class SurveyError:
    """One mistake in a survey file: where it is and what is wrong."""

    line: int  # 1-based; 0 when the file itself could not be read
    question: str  # the question's id, or "" for survey-wide mistakes
    message: str

    def __str__(self) -> str:
        where = f"[{self.question}] " if self.question else ""
        return f"{self.line}: {where}{self.message}"


class SurveyFileError(Exception):
    """A survey file that cannot be used, with every mistake found in it."""

    def __init__(self, path: str, errors: Sequence[SurveyError]) -> None:
        self.path = path
        self.errors = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{self.path}:{error}" for error in self.errors)


def check_survey(text: str) -> list[SurveyError]:
    """Every mistake in a survey file's text, in file order; [] when the survey is valid."""
    return _Reader().read(text)[1]


def parse_survey(text: str, source: str = "<survey>") -> Questionnaire:
    """The questionnaire in a survey file's text; SurveyFileError lists all its mistakes."""
    questionnaire, errors = _Reader().read(text)
    if errors or questionnaire is None:
        raise SurveyFileError(source, errors)
    return questionnaire


def load_survey(path: str | Path) -> Questionnaire:
    """The questionnaire in a survey file; a missing or unreadable file is a SurveyFileError too."""
    try:
        # utf-8-sig: files saved by Windows editors often start with a byte order mark.
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise SurveyFileError(str(path), [SurveyError(0, "", f"cannot read the file: {reason}")]) from error
    return parse_survey(text, str(path))


def survey_hash(text: str) -> str:
    """SHA-256 of what a survey means, not how it is written.

    Whitespace, comments, key order, quoting, the two option spellings and spelled-out defaults do not
    change the hash; any change residents could see (or that skip logic uses) does. Raises
    SurveyFileError for an invalid survey.
    """
    canonical = json.dumps(_canonical(parse_survey(text)), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(survey: Questionnaire) -> dict[str, object]:
    return {
        "format": HASH_FORMAT,
        "id": survey.id,
        "version": survey.version,
        "title": survey.title,
        "intro": survey.intro,
        "consent": {
            "notice": survey.consent.notice,
            "agree": survey.consent.agree,
            "decline": survey.consent.decline,
            "anonymous": survey.consent.anonymous,
        },
        "questions": [_canonical_question(q) for q in survey.questions],
    }


def _canonical_question(q: Question) -> dict[str, object]:
    return {
        "id": q.id,
        "kind": q.kind.value,
        "text": q.text,
        "help": q.help,
        "required": q.required,
        "options": [[o.code, o.label] for o in q.options],
        # Clauses all must hold, so their order means nothing.
        "when": sorted([c.question, sorted(c.codes), _plain(c.minimum), _plain(c.maximum)] for c in q.when),
        "max_length": q.max_length,
        "minimum": _plain(q.minimum),
        "maximum": _plain(q.maximum),
        "integer": q.integer,
        "scale_labels": sorted([p, label] for p, label in q.scale_labels.items()),
        "grievance": q.grievance,
        "consent": q.consent,
    }


def _plain(number: float | None) -> float | int | None:
    """`min: 1` and `min: 1.0` mean the same; give them the same canonical form."""
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


# --- reading -----------------------------------------------------------------------------------------

# Blank instances give the model's defaults; with slots the class attributes are descriptors, not values.
_QUESTION_DEFAULTS = Question("", QuestionKind.TEXT, "")
_CONSENT_DEFAULTS = Consent("")

_Entries = dict[str, tuple[ScalarNode, Node]]


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _shape(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "empty"
    return f"'{node.value}'"


@dataclass
class _Draft:
    """A question as read so far, with what the checks across questions need to know about it."""

    question: Question
    kind_known: bool
    when_key: ScalarNode | None = None
    when_node: Node | None = None
    when_valid: bool = True
    option_lines: dict[str, int] = field(default_factory=dict)  # where each option code is written

    @property
    def when_line(self) -> int:
        return _line(self.when_key) if self.when_key is not None else self.question.line


class _Reader:
    """One pass over the YAML node tree that builds a Questionnaire and collects every mistake."""

    def __init__(self) -> None:
        self.errors: list[SurveyError] = []
        self._constructor = SafeConstructor()

    def read(self, text: str) -> tuple[Questionnaire | None, list[SurveyError]]:
        root = self._compose(text)
        survey = self._survey(root) if root is not None else None
        # A stable sort: mistakes on one line keep the order in which they were found.
        errors = sorted(self.errors, key=lambda e: e.line)
        return (None if errors else survey), errors

    def error(self, where: Node | int, message: str, question: str = "") -> None:
        line = where if isinstance(where, int) else _line(where)
        self.errors.append(SurveyError(line, question, message))

    # --- YAML and plain values ---

    def _compose(self, text: str) -> Node | None:
        try:
            root: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark is not None else 1
            message = f"YAML syntax error: {error.problem or error.context or 'cannot parse'}"
            if error.problem and error.context:
                # The context reads "while parsing ..." after the problem, or "expected ..." before it.
                if error.context.startswith("while"):
                    message += f" {error.context}"
                else:
                    message = f"YAML syntax error: {error.context}, {error.problem}"
                if error.context_mark is not None and error.context_mark.line + 1 != line:
                    message += f" (started at line {error.context_mark.line + 1})"
            if "'\\t'" in message:
                message += "; indent with spaces, not tabs"
            self.error(line, message)
            return None
        except yaml.reader.ReaderError as error:
            line = text[: error.position].count("\n") + 1
            character = f" ({chr(error.character)!r})" if isinstance(error.character, int) else ""
            self.error(line, f"the file contains a character YAML does not allow{character}")
            return None
        except yaml.YAMLError as error:
            self.error(1, f"YAML error: {error}")
            return None
        if root is None:
            self.error(1, "the file is empty")
        return root

    def _entries(self, node: MappingNode, where: str, question: str = "") -> _Entries:
        """The pairs of a mapping by key; PyYAML keeps the last of duplicate keys silently, so report them."""
        entries: _Entries = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _NULL:
                self.error(key, f"{where}: keys must be plain words, not {_shape(key)}", question)
                continue
            if key.value in entries:
                first = _line(entries[key.value][0])
                self.error(key, f"{where}: duplicate key '{key.value}' (first at line {first})", question)
                continue
            entries[key.value] = (key, value)
        return entries

    def _known_keys(self, entries: _Entries, known: Sequence[str], where: str, question: str = "") -> None:
        for name, (key, _) in entries.items():
            if name not in known:
                self.error(key, f"{where}: unknown key '{name}'{_suggest(name, known)}", question)

    def _required_keys(
        self, node: Node, entries: _Entries, required: Sequence[str], where: str, question: str = ""
    ) -> None:
        for name in required:
            if name not in entries:
                self.error(node, f"{where}: missing required key '{name}'", question)

    def _text(self, node: Node, name: str, question: str = "", allow_empty: bool = False) -> str | None:
        """Words for residents; a number or yes/no is kept as written, since here it is words too."""
        if not isinstance(node, ScalarNode):
            self.error(node, f"{name} must be text, not {_shape(node)}", question)
            return None
        if node.tag not in (_STR, _INT, _FLOAT, _BOOL, _NULL):
            self.error(node, f"{name} must be text, not a value tagged {node.tag}", question)
            return None
        value = "" if node.tag == _NULL else str(node.value).strip()
        if not value and not allow_empty:
            self.error(node, f"{name} is empty", question)
            return None
        return value

    def _code(self, node: Node, what: str, question: str = "") -> str | None:
        """An id or option code as written, so that `yes` or `1` stay words rather than true or 1."""
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.error(node, f"{what} must be a word, not {_shape(node)}", question)
            return None
        value = str(node.value)
        if not CODE_PATTERN.match(value):
            self.error(node, f"{what} '{value}' must be 1 to 32 letters, digits, '_' or '-'", question)
            return None
        return value

    def _value(self, node: Node, tags: Sequence[str]) -> object:
        if isinstance(node, ScalarNode) and node.tag in tags:
            return self._constructor.construct_object(node)
        return None

    def _int(self, node: Node, name: str, question: str = "") -> int | None:
        value = self._value(node, (_INT,))
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(node, f"{name} must be a whole number, not {_shape(node)}", question)
            return None
        return value

    def _number(self, node: Node, name: str, question: str = "") -> float | None:
        value = self._value(node, (_INT, _FLOAT))
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            self.error(node, f"{name} must be a number, not {_shape(node)}", question)
            return None
        return value

    def _bool(self, node: Node, name: str, question: str = "") -> bool | None:
        value = self._value(node, (_BOOL,))
        if not isinstance(value, bool):
            self.error(node, f"{name} must be true or false, not {_shape(node)}", question)
            return None
        return value

    # --- the survey ---

    def _survey(self, root: Node) -> Questionnaire | None:
        if not isinstance(root, MappingNode):
            self.error(root, f"the survey must be a mapping with the keys {', '.join(_TOP_REQUIRED)}")
            return None
        entries = self._entries(root, "survey")
        self._known_keys(entries, _TOP_KEYS, "survey")
        self._required_keys(root, entries, _TOP_REQUIRED, "survey")

        survey_id = self._code(entries["id"][1], "survey id") if "id" in entries else None
        version = self._version(entries["version"][1]) if "version" in entries else None
        title = self._text(entries["title"][1], "title") if "title" in entries else None
        intro = self._text(entries["intro"][1], "intro", allow_empty=True) if "intro" in entries else ""
        consent = self._consent(*entries["consent"]) if "consent" in entries else None
        if consent is not None and intro is not None and title is not None:
            length = len(title) + len(intro) + len(consent.notice) + FRAME_RESERVE
            if length > MESSAGE_LIMIT:
                self.error(
                    entries["consent"][0],
                    f"title, intro and consent notice make {length} characters with the frame; "
                    f"one message holds {MESSAGE_LIMIT}",
                )
        questions = self._questions(entries["questions"][1]) if "questions" in entries else None
        if (
            survey_id is None
            or version is None
            or title is None
            or intro is None
            or consent is None
            or questions is None
        ):
            return None
        return Questionnaire(survey_id, version, title, intro, consent, questions)

    def _version(self, node: Node) -> int | None:
        value = self._value(node, (_INT,))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.error(node, f"version must be a positive whole number, not {_shape(node)}")
            return None
        return value

    def _consent(self, key: ScalarNode, node: Node) -> Consent | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"consent must be a mapping with the keys {', '.join(_CONSENT_KEYS)}")
            return None
        entries = self._entries(node, "consent")
        self._known_keys(entries, _CONSENT_KEYS, "consent")
        self._required_keys(node, entries, ("notice",), "consent")
        notice = self._text(entries["notice"][1], "consent notice") if "notice" in entries else None
        valid = notice is not None
        labels = {"agree": _CONSENT_DEFAULTS.agree, "decline": _CONSENT_DEFAULTS.decline, "anonymous": ""}
        for name in ("agree", "decline", "anonymous"):
            if name not in entries:
                continue
            label_node = entries[name][1]
            label = self._text(label_node, f"consent {name}")
            if label is None:
                valid = False
                if name == "anonymous":
                    self.error(label_node, "to offer no anonymous choice, leave consent anonymous out")
                continue
            if len(label) > LABEL_LIMIT:
                self.error(
                    label_node, f"consent {name} is {len(label)} characters; a button holds {LABEL_LIMIT}"
                )
                valid = False
            labels[name] = label
        # Compare the labels residents will see, defaults included: two equal buttons could not be told apart.
        seen: dict[str, str] = {}
        for name, label in labels.items():
            if not label:
                continue
            folded = normalise(label)
            if folded in seen:
                self.error(
                    entries[name][1] if name in entries else key,
                    f"consent {name} has the same label as consent {seen[folded]}",
                )
                valid = False
            seen[folded] = name
        if not valid or notice is None:
            return None
        return Consent(notice, labels["agree"], labels["decline"], labels["anonymous"])

    def _questions(self, node: Node) -> tuple[Question, ...] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, f"questions must be a list of questions, not {_shape(node)}")
            return None
        if not node.value:
            self.error(node, "questions: the survey has no questions")
            return None
        drafts: list[_Draft] = []
        position: dict[str, int] = {}  # question id -> index of its first appearance in drafts
        for item in node.value:
            draft = self._question(item)
            if draft is None:
                continue
            qid = draft.question.id
            if qid in position:
                first = drafts[position[qid]].question.line
                self.error(draft.question.line, f"duplicate question id '{qid}' (first at line {first})", qid)
            elif qid:
                position[qid] = len(drafts)
            drafts.append(draft)
        for index, draft in enumerate(drafts):
            self._when(draft, index, drafts, position)
        self._cycles(drafts, position)
        self._reachability(drafts, position)
        return tuple(d.question for d in drafts)

    def _question(self, node: Node) -> _Draft | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"a question must be a mapping with id, type and text, not {_shape(node)}")
            return None
        entries = self._entries(node, "question")
        qid = (self._code(entries["id"][1], "question id") or "") if "id" in entries else ""
        kind = self._kind(entries["type"][1], qid) if "type" in entries else None
        self._question_keys(entries, kind, qid)
        self._required_keys(node, entries, ("id", "type", "text"), "question", qid)

        text = self._text(entries["text"][1], "text", qid) if "text" in entries else None
        help_text = self._text(entries["help"][1], "help", qid, allow_empty=True) if "help" in entries else ""
        required = self._bool(entries["required"][1], "required", qid) if "required" in entries else True
        draft = _Draft(
            Question(qid, kind or QuestionKind.TEXT, text or "", line=_line(node)), kind is not None
        )
        if "when" in entries:
            draft.when_key, draft.when_node = entries["when"]

        options: tuple[Option, ...] = ()
        if kind in _OPTION_KINDS:
            if "options" in entries:
                options = self._options(*entries["options"], qid, draft)
            else:
                self.error(node, f"a {kind} question needs options", qid)
        least: float | None = None
        most: float | None = None
        if kind is QuestionKind.MULTI:
            least, most = self._choice_limits(entries, qid, len(options))
        scale_labels: dict[int, str] = {}
        if kind is QuestionKind.SCALE:
            least, most, scale_labels = self._scale(node, entries, qid)
        integer = _QUESTION_DEFAULTS.integer
        if kind is QuestionKind.NUMBER:
            least, most, integer = self._number_range(entries, qid)
        max_length, grievance = _QUESTION_DEFAULTS.max_length, _QUESTION_DEFAULTS.grievance
        if kind is QuestionKind.TEXT:
            max_length, grievance = self._text_limits(entries, qid)
        consent = ""
        if kind is QuestionKind.PHONE:
            consent = self._phone_consent(node, entries, qid)

        draft.question = replace(
            draft.question,
            help=help_text or "",
            required=required is not False,
            options=options,
            minimum=least,
            maximum=most,
            integer=integer,
            scale_labels=scale_labels,
            max_length=max_length,
            grievance=grievance,
            consent=consent,
        )
        if kind is not None:
            self._buttons_fit(draft, node)
        if text is not None:
            self._question_fits(draft, entries["text"][1])
        return draft

    def _kind(self, node: Node, qid: str) -> QuestionKind | None:
        kinds = [k.value for k in QuestionKind]
        if isinstance(node, ScalarNode) and node.value in kinds:
            return QuestionKind(node.value)
        name = node.value if isinstance(node, ScalarNode) else ""
        self.error(
            node, f"type must be one of {', '.join(kinds)}, not {_shape(node)}{_suggest(name, kinds)}", qid
        )
        return None

    def _question_keys(self, entries: _Entries, kind: QuestionKind | None, qid: str) -> None:
        allowed = _COMMON_KEYS + _KIND_KEYS[kind] if kind is not None else _QUESTION_KEYS
        for name, (key, _) in entries.items():
            if name in allowed:
                continue
            if name in _QUESTION_KEYS and kind is not None:
                hint = _KIND_HINTS.get((kind, name))
                suffix = f"; did you mean '{hint}'?" if hint else ""
                self.error(key, f"'{name}' does not apply to a {kind} question{suffix}", qid)
            else:
                self.error(key, f"question: unknown key '{name}'{_suggest(name, allowed)}", qid)

    def _options(self, key: ScalarNode, node: Node, qid: str, draft: _Draft) -> tuple[Option, ...]:
        if not isinstance(node, SequenceNode):
            self.error(node, f"options must be a list of 'code: label' entries, not {_shape(node)}", qid)
            return ()
        if len(node.value) < 2:
            self.error(key, f"a choice question needs at least 2 options, not {len(node.value)}", qid)
        options: list[Option] = []
        by_label: dict[str, str] = {}
        for item in node.value:
            read = self._option(item, qid)
            if read is None:
                continue
            option, code_node, label_node = read
            if option.code in draft.option_lines:
                first = draft.option_lines[option.code]
                self.error(code_node, f"duplicate option code '{option.code}' (first at line {first})", qid)
                continue
            # Labels equal but for punctuation or width would make a typed answer ambiguous.
            folded = normalise(option.label)
            if folded in by_label:
                self.error(
                    label_node,
                    f"option '{option.code}' has the same label as option '{by_label[folded]}'",
                    qid,
                )
            by_label.setdefault(folded, option.code)
            if len(option.label) > LABEL_LIMIT:
                self.error(
                    label_node,
                    f"option '{option.code}' label is {len(option.label)} characters; "
                    f"a button holds {LABEL_LIMIT}",
                    qid,
                )
            draft.option_lines[option.code] = _line(code_node)
            options.append(option)
        return tuple(options)

    def _option(self, node: Node, qid: str) -> tuple[Option, Node, Node] | None:
        if not isinstance(node, MappingNode) or not node.value:
            self.error(
                node, f"an option must be 'code: label' or {{code: ..., label: ...}}, not {_shape(node)}", qid
            )
            return None
        entries = self._entries(node, "option", qid)
        if len(node.value) > 1 or entries.keys() & {"code", "label"}:
            self._known_keys(entries, ("code", "label"), "option", qid)
            self._required_keys(node, entries, ("code", "label"), "option", qid)
            if "code" not in entries or "label" not in entries:
                return None
            code_node, label_node = entries["code"][1], entries["label"][1]
        elif entries:
            code_node, label_node = next(iter(entries.values()))
        else:
            return None
        code = self._code(code_node, "option code", qid)
        label = self._text(label_node, f"option '{code}' label" if code else "option label", qid)
        if code is None or label is None:
            return None
        return Option(code, label), code_node, label_node

    def _choice_limits(self, entries: _Entries, qid: str, count: int) -> tuple[int | None, int | None]:
        least = self._int(entries["min_choices"][1], "min_choices", qid) if "min_choices" in entries else None
        most = self._int(entries["max_choices"][1], "max_choices", qid) if "max_choices" in entries else None
        if least is not None and not 0 <= least <= count:
            self.error(
                entries["min_choices"][1], f"min_choices {least} is impossible with {count} options", qid
            )
        if most is not None and most < 1:
            self.error(entries["max_choices"][1], f"max_choices must be at least 1, not {most}", qid)
        elif least is not None and most is not None and least > most:
            self.error(entries["max_choices"][1], f"max_choices {most} is below min_choices {least}", qid)
        return least, most

    def _scale(
        self, node: Node, entries: _Entries, qid: str
    ) -> tuple[int | None, int | None, dict[int, str]]:
        self._required_keys(node, entries, ("min", "max"), "scale question", qid)
        low = self._int(entries["min"][1], "min", qid) if "min" in entries else None
        high = self._int(entries["max"][1], "max", qid) if "max" in entries else None
        if low is None or high is None:
            return None, None, {}
        if low >= high:
            self.error(entries["max"][1], f"a scale needs min below max, not {low} to {high}", qid)
            return None, None, {}
        if high - low + 1 > MAX_SCALE_POINTS:
            self.error(
                entries["max"][1],
                f"a scale of {high - low + 1} points is too wide; at most {MAX_SCALE_POINTS} fit a keyboard",
                qid,
            )
            return None, None, {}
        labels: dict[int, str] = {}
        if "labels" not in entries:
            return low, high, labels
        labels_node = entries["labels"][1]
        if not isinstance(labels_node, MappingNode):
            self.error(
                labels_node,
                f"labels must map scale points to words, like {{1: 完全没必要}}, not {_shape(labels_node)}",
                qid,
            )
            return low, high, labels
        for key, value in labels_node.value:
            point = self._int(key, "a scale label's point", qid)
            words = self._text(value, f"label of point {point}", qid)
            if point is None or words is None:
                continue
            if not low <= point <= high:
                self.error(key, f"label for point {point} lies outside the scale {low} to {high}", qid)
            elif point in labels:
                self.error(key, f"duplicate label for point {point}", qid)
            elif len(f"{point} {words}") > LABEL_LIMIT:
                self.error(
                    value, f"label of point {point} is too long for a button ({LABEL_LIMIT} characters)", qid
                )
            else:
                labels[point] = words
        return low, high, labels

    def _number_range(self, entries: _Entries, qid: str) -> tuple[float | None, float | None, bool]:
        low = self._number(entries["min"][1], "min", qid) if "min" in entries else None
        high = self._number(entries["max"][1], "max", qid) if "max" in entries else None
        integer = self._bool(entries["integer"][1], "integer", qid) if "integer" in entries else None
        integer = _QUESTION_DEFAULTS.integer if integer is None else integer
        if low is not None and high is not None:
            if low > high:
                self.error(entries["max"][1], f"max {high} is below min {low}", qid)
            elif integer and math.ceil(low) > math.floor(high):
                self.error(entries["max"][1], f"no whole number lies between min {low} and max {high}", qid)
        return low, high, integer

    def _text_limits(self, entries: _Entries, qid: str) -> tuple[int, bool]:
        max_length, grievance = _QUESTION_DEFAULTS.max_length, _QUESTION_DEFAULTS.grievance
        if "max_length" in entries:
            length = self._int(entries["max_length"][1], "max_length", qid)
            if length is not None and not 1 <= length <= MAX_TEXT_LENGTH:
                self.error(
                    entries["max_length"][1], f"max_length must be 1 to {MAX_TEXT_LENGTH}, not {length}", qid
                )
            elif length is not None:
                max_length = length
        if "grievance" in entries:
            grievance = self._bool(entries["grievance"][1], "grievance", qid) or False
        return max_length, grievance

    def _phone_consent(self, node: Node, entries: _Entries, qid: str) -> str:
        if "consent" not in entries:
            # PIPL asks for a separate consent before a phone number is collected.
            self.error(node, "a phone question needs 'consent': the separate question asking permission", qid)
            return ""
        consent = self._text(entries["consent"][1], "consent", qid)
        if consent is None:
            return ""
        self._fits_message(entries["consent"][1], "the phone consent question", len(consent), qid)
        return consent

    def _question_fits(self, draft: _Draft, text_node: Node) -> None:
        q = draft.question
        choices = q.choices() if q.kind in CHOICE_KINDS and draft.kind_known else ()
        # The engine may also list the options in the text, numbered, for residents who type answers.
        listed = sum(len(f"{i}. {o.label}\n") for i, o in enumerate(choices, start=1))
        self._fits_message(text_node, "the question", len(q.text) + len(q.help) + listed, q.id)

    def _fits_message(self, node: Node, what: str, length: int, qid: str) -> None:
        if length + FRAME_RESERVE > MESSAGE_LIMIT:
            self.error(
                node,
                f"{what} makes {length + FRAME_RESERVE} characters with the frame; "
                f"one message holds {MESSAGE_LIMIT}",
                qid,
            )

    def _buttons_fit(self, draft: _Draft, node: Node) -> None:
        """Every button of the question must say what it means within Telegram's 64 bytes."""
        q = draft.question
        if not q.id:
            return
        # Every question has buttons (skip, keep, phone consent) even without options of its own.
        for code in [o.code for o in q.choices()] or [""]:
            size = worst_case_length(q.id, code)
            if size > CALLBACK_LIMIT:
                what = f"option '{code}'" if code else "this question"
                where = draft.option_lines.get(code, _line(node))
                self.error(
                    where,
                    f"button data for {what} can reach {size} bytes, over Telegram's {CALLBACK_LIMIT}: "
                    "shorten the question id or the code",
                    q.id,
                )

    # --- skip logic ---

    def _when(self, draft: _Draft, index: int, drafts: Sequence[_Draft], position: dict[str, int]) -> None:
        node, q = draft.when_node, draft.question
        if node is None:
            return
        if not isinstance(node, MappingNode) or not node.value:
            shape = "empty" if isinstance(node, MappingNode) else _shape(node)
            self.error(
                node, f"when must map question ids to the answers that show this question, not {shape}", q.id
            )
            draft.when_valid = False
            return
        conditions: list[Condition] = []
        for ref, (ref_node, spec) in self._entries(node, "when", q.id).items():
            condition = self._condition(q, ref, ref_node, spec, index, drafts, position)
            if condition is not None:
                conditions.append(condition)
        if len(conditions) != len(node.value):
            draft.when_valid = False
        draft.question = replace(q, when=tuple(conditions))

    def _condition(
        self,
        q: Question,
        ref: str,
        ref_node: ScalarNode,
        spec: Node,
        index: int,
        drafts: Sequence[_Draft],
        position: dict[str, int],
    ) -> Condition | None:
        if ref == q.id:
            self.error(ref_node, "when refers to the question itself", q.id)
            return None
        if ref not in position:
            self.error(ref_node, f"when refers to unknown question '{ref}'{_suggest(ref, position)}", q.id)
            return None
        if position[ref] > index:
            # Still read the clause: the loop check names the whole cycle when there is one.
            self.error(
                ref_node,
                f"when refers to '{ref}', which comes later; a question can only depend on earlier ones",
                q.id,
            )
        target = drafts[position[ref]]
        kind = target.question.kind
        if not target.kind_known or (kind is QuestionKind.SCALE and not target.question.choices()):
            return None  # its type or range is wrong, and that is reported already
        if kind in (QuestionKind.TEXT, QuestionKind.PHONE):
            self.error(ref_node, f"when cannot depend on '{ref}': a {kind} answer is free text", q.id)
            return None
        if isinstance(spec, MappingNode):
            return self._range_condition(q, ref, target.question, spec)
        return self._codes_condition(q, ref, target.question, spec)

    def _codes_condition(self, q: Question, ref: str, target: Question, spec: Node) -> Condition | None:
        if target.kind is QuestionKind.NUMBER:
            self.error(spec, f"'{ref}' is a number question: give a range like {{min: 1, max: 5}}", q.id)
            return None
        items = spec.value if isinstance(spec, SequenceNode) else [spec]
        if not items:
            self.error(spec, f"when: the list of codes for '{ref}' is empty", q.id)
            return None
        known = [o.code for o in target.choices()]
        what = "point" if target.kind is QuestionKind.SCALE else "option"
        codes: set[str] = set()
        for item in items:
            code = self._code(item, f"when code for '{ref}'", q.id)
            if code is None:
                return None
            if code not in known:
                self.error(item, f"'{ref}' has no {what} '{code}'{_suggest(code, known)}", q.id)
                return None
            codes.add(code)
        return Condition(ref, codes=frozenset(codes))

    def _range_condition(
        self, q: Question, ref: str, target: Question, spec: MappingNode
    ) -> Condition | None:
        if target.kind in _OPTION_KINDS:
            self.error(spec, f"'{ref}' is a choice question: list option codes, not a range", q.id)
            return None
        entries = self._entries(spec, f"when range for '{ref}'", q.id)
        self._known_keys(entries, ("min", "max"), f"when range for '{ref}'", q.id)
        if not entries.keys() & {"min", "max"}:
            self.error(spec, f"when range for '{ref}' needs min, max or both", q.id)
            return None
        low = self._number(entries["min"][1], "when min", q.id) if "min" in entries else None
        high = self._number(entries["max"][1], "when max", q.id) if "max" in entries else None
        if ("min" in entries and low is None) or ("max" in entries and high is None):
            return None
        if low is not None and high is not None and low > high:
            self.error(spec, f"when range for '{ref}' has min {low} above max {high}", q.id)
            return None
        if not entries.keys() <= {"min", "max"} or len(entries) != len(spec.value):
            return None
        return Condition(ref, minimum=low, maximum=high)

    def _cycles(self, drafts: Sequence[_Draft], position: dict[str, int]) -> None:
        """Report each loop of dependencies once, as a path from its earliest question back to it."""
        edges = {
            d.question.id: [c.question for c in d.question.when if c.question != d.question.id]
            for d in drafts
            if d.question.id
        }
        state: dict[str, str] = {}  # "open" while on the current path, then "done"
        path: list[str] = []
        reported: set[frozenset[str]] = set()

        def visit(node: str) -> None:
            state[node] = "open"
            path.append(node)
            for nxt in edges.get(node, ()):
                if state.get(nxt) == "open":
                    self._report_cycle(path[path.index(nxt) :], reported, drafts, position)
                elif nxt not in state:
                    visit(nxt)
            path.pop()
            state[node] = "done"

        for qid in edges:
            if qid not in state:
                visit(qid)

    def _report_cycle(
        self,
        loop: list[str],
        reported: set[frozenset[str]],
        drafts: Sequence[_Draft],
        position: dict[str, int],
    ) -> None:
        if frozenset(loop) in reported:
            return
        reported.add(frozenset(loop))
        start = min(range(len(loop)), key=lambda i: position[loop[i]])
        loop = loop[start:] + loop[:start]
        first = drafts[position[loop[0]]]
        self.error(first.when_line, "when makes a loop: " + " → ".join([*loop, loop[0]]), loop[0])

    def _reachability(self, drafts: Sequence[_Draft], position: dict[str, int]) -> None:
        """Report questions that can never be asked because the answers they need cannot all be given.

        A clause holds only when its question was answered, and that question is asked only when its own
        clauses hold, so each question inherits the clauses of every question it depends on.
        """
        needs: dict[str, list[tuple[str, Condition]]] = {}  # reachable question -> (whose clause, clause)
        unreachable: set[str] = set()
        for index, draft in enumerate(drafts):
            q = draft.question
            if not q.id or position.get(q.id) != index or not draft.when_valid:
                continue
            refs = [c.question for c in q.when]
            if any(position[r] >= index or (r not in needs and r not in unreachable) for r in refs):
                continue  # a forward reference or a question that could not be checked: reported elsewhere
            dead = next((r for r in refs if r in unreachable), None)
            if dead is not None:
                unreachable.add(q.id)
                self.error(
                    draft.when_line,
                    f"the question can never be shown: it depends on '{dead}', which can never be shown",
                    q.id,
                )
                continue
            inherited = [(q.id, c) for c in q.when] + [pair for r in refs for pair in needs[r]]
            by_target: dict[str, list[tuple[str, Condition]]] = {}
            for source, clause in inherited:
                by_target.setdefault(clause.question, []).append((source, clause))
            failed = next(
                (
                    ref
                    for ref, pairs in by_target.items()
                    if not _satisfiable(drafts[position[ref]].question, [c for _, c in pairs])
                ),
                None,
            )
            if failed is None:
                needs[q.id] = inherited
                continue
            unreachable.add(q.id)
            sources = {s for s, _ in by_target[failed]}
            others = " and ".join(f"'{s}'" for s in sorted(sources - {q.id}, key=position.__getitem__))
            if q.id not in sources:
                whose = f"the conditions of {others}, which it depends on"
            elif others:
                whose = f"its conditions and those of {others}, which it depends on"
            else:
                whose = "its conditions"
            self.error(
                draft.when_line,
                f"the question can never be shown: no answer to '{failed}' meets {whose}",
                q.id,
            )


def _satisfiable(target: Question, clauses: Sequence[Condition]) -> bool:
    """Whether one answer to `target` can make every clause hold, judged by the clauses' own `holds`."""
    if target.kind is QuestionKind.NUMBER:
        low = max([c.minimum for c in clauses if c.minimum is not None], default=-math.inf)
        high = min([c.maximum for c in clauses if c.maximum is not None], default=math.inf)
        if target.minimum is not None:
            low = max(low, target.minimum)
        if target.maximum is not None:
            high = min(high, target.maximum)
        if low > high:
            return False
        return not (
            target.integer
            and math.isfinite(low)
            and math.isfinite(high)
            and math.ceil(low) > math.floor(high)
        )
    if target.kind is QuestionKind.MULTI:
        # The resident may tick several options, up to max_choices: look for a set that meets every clause.
        candidates = sorted({o.code for o in target.options} & set().union(*(c.codes for c in clauses)))
        most = len(clauses) if target.maximum is None else min(len(clauses), int(target.maximum))
        return any(
            all(c.holds({target.id: list(chosen)}) for c in clauses)
            for size in range(1, most + 1)
            for chosen in itertools.combinations(candidates, size)
        )
    answers: list[AnswerValue] = (
        [int(o.code) for o in target.choices()]
        if target.kind is QuestionKind.SCALE
        else [o.code for o in target.options]
    )
    return any(all(c.holds({target.id: answer}) for c in clauses) for answer in answers)
