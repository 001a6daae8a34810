"""Survey files: the example parses as intended, and every check reports its mistake at the right place."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from bot.callbacks import CALLBACK_LIMIT, worst_case_length
from bot.questionnaire import FRAME_RESERVE, MESSAGE_LIMIT, Condition, QuestionKind
from bot.survey_file import (
    LABEL_LIMIT,
    SurveyError,
    SurveyFileError,
    check_survey,
    load_survey,
    parse_survey,
    survey_hash,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "road-widening.yaml"
BROKEN = Path(__file__).resolve().parent / "data" / "broken-survey.yaml"

HEADER = """\
id: base
version: 1
title: 测试问卷
intro: 您好。
consent:
  notice: 仅用于测试。
"""
# Earlier questions of every type, for the cases below to depend on.
QUESTIONS = """\
questions:
  - id: relation
    type: single
    text: 您和工程是什么关系？
    options:
      - owner: 产权人
      - tenant: 租户
      - nearby: 附近居民
  - id: necessity
    type: scale
    text: 有必要吗？
    min: 1
    max: 4
  - id: household
    type: number
    text: 家里几口人？
    min: 1
    max: 30
  - id: concerns
    type: multi
    text: 担心什么？
    options:
      - noise: 噪音
      - dust: 扬尘
      - traffic: 交通
  - id: reasons
    type: text
    text: 为什么？
    required: false
  - id: phone
    type: phone
    consent: 您愿意留下电话吗？
    text: 请输入电话。
"""
MARK = "#!"  # ends the line where a case expects its mistake


def survey(extra: str = "", header: str = HEADER) -> str:
    """A valid survey, plus `extra` questions written at column 0 as list items."""
    return header + QUESTIONS + textwrap.indent(textwrap.dedent(extra), "  ")


def marked_line(text: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.rstrip().endswith(MARK)]
    assert len(lines) == 1, f"a case needs exactly one {MARK} mark"
    return lines[0]


def only_error(text: str) -> SurveyError:
    errors = check_survey(text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


LONG_ID = "q" * 25


def longest_code(question_id: str) -> str:
    """The longest option code whose button data still fits Telegram's limit."""
    code = ""
    while worst_case_length(question_id, code + "c") <= CALLBACK_LIMIT:
        code += "c"
    return code


def assert_error_at_mark(text: str, question: str, fragment: str) -> None:
    error = only_error(text)
    assert (error.line, error.question) == (marked_line(text), question), str(error)
    assert fragment in error.message, str(error)


# --- the example -------------------------------------------------------------------------------------


def test_base_survey_used_by_the_cases_is_valid() -> None:
    assert check_survey(survey()) == []


def test_example_is_valid_and_complete() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert check_survey(text) == []
    q = load_survey(EXAMPLE)
    assert (q.id, q.version) == ("road-widening", 1)
    assert q.allows_anonymous
    assert "/delete" in q.consent.notice and "备案后" in q.consent.notice
    assert [x.id for x in q.questions] == [
        "relation", "community", "distance", "age", "occupation", "awareness", "necessity", "effect",
        "attitude", "reasons", "construction_concerns", "operation_concerns", "compensation", "disturbance",
        "instability", "suggestions", "phone",
    ]  # fmt: skip
    kinds = {x.id: x.kind for x in q.questions}
    assert kinds["necessity"] is QuestionKind.SCALE
    assert kinds["construction_concerns"] is kinds["operation_concerns"] is QuestionKind.MULTI
    assert kinds["reasons"] is kinds["suggestions"] is QuestionKind.TEXT
    assert kinds["phone"] is QuestionKind.PHONE
    assert sum(k is QuestionKind.SINGLE for k in kinds.values()) == 11


def test_example_questions_carry_their_settings() -> None:
    q = load_survey(EXAMPLE)
    attitude = q.question("attitude")
    assert attitude is not None
    assert [(o.code, o.label) for o in attitude.options] == [
        ("support", "支持"), ("conditional", "有条件支持"), ("oppose", "不支持"), ("indifferent", "无所谓"),
    ]  # fmt: skip
    necessity = q.question("necessity")
    assert necessity is not None
    assert (necessity.minimum, necessity.maximum) == (1, 4)
    assert [o.label for o in necessity.choices()] == [
        "1 完全没必要",
        "2 不太必要",
        "3 比较必要",
        "4 非常必要",
    ]
    age = q.question("age")
    assert age is not None and not age.required
    assert [o.code for o in age.options][:2] == ["under30", "30to44"]
    assert all(x.grievance == (x.id in {"reasons", "suggestions"}) for x in q.questions)
    concerns = q.question("construction_concerns")
    assert concerns is not None and concerns.minimum == 1 and concerns.maximum is None
    phone = q.question("phone")
    assert phone is not None and "电话" in phone.consent
    reasons = q.question("reasons")
    compensation = q.question("compensation")
    assert reasons is not None and compensation is not None
    assert reasons.when == (Condition("attitude", codes=frozenset({"conditional", "oppose"})),)
    assert compensation.when == (Condition("relation", codes=frozenset({"owner", "tenant", "business"})),)
    assert [x.id for x in q.questions if x.when] == ["reasons", "compensation"]


def test_example_skip_logic() -> None:
    q = load_survey(EXAMPLE)
    everyone = {x.id for x in q.questions} - {"reasons", "compensation"}

    def asked(answers: dict[str, str], anonymous: bool = False) -> set[str]:
        return {x.id for x in q.applicable(answers, anonymous)}

    both = everyone | {"reasons", "compensation"}
    assert asked({"relation": "nearby", "attitude": "support"}) == everyone
    assert asked({"relation": "owner", "attitude": "oppose"}) == both
    assert asked({"relation": "business", "attitude": "conditional"}) == both
    assert asked({"relation": "nearby", "attitude": "oppose"}) == everyone | {"reasons"}
    assert asked({"relation": "tenant", "attitude": "support"}) == everyone | {"compensation"}
    assert asked({"relation": "land", "attitude": "indifferent"}) == everyone
    assert "phone" not in asked({"relation": "tenant"}, anonymous=True)


# --- the broken file ---------------------------------------------------------------------------------


def test_broken_file_reports_every_mistake_at_its_line() -> None:
    errors = check_survey(BROKEN.read_text(encoding="utf-8"))
    expected = [
        (2, "", "missing required key 'title'"),
        (2, "", "survey id 'road widening' must be 1 to 32"),
        (3, "", "version must be a positive whole number"),
        (4, "", "unknown key 'titel'; did you mean 'title'?"),
        (8, "", "consent anonymous has the same label as consent agree"),
        (16, "relation", "duplicate option code 'owner' (first at line 14)"),
        (17, "relation", "option 'renter' has the same label as option 'tenant'"),
        (19, "area", "not 'singel'; did you mean 'single'?"),
        (24, "attitude", "unknown key 'optons'; did you mean 'options'?"),
        (26, "attitude", "needs at least 2 options, not 1"),
        (33, "necessity", "label for point 0 lies outside the scale 1 to 4"),
        (34, "necessity", "'options' does not apply to a scale question"),
        (39, "reasons", "max_length must be 1 to 4000, not 5000"),
        (41, "reasons", "'attitude' has no option 'opose'"),
        (42, "reasons", "refers to the question itself"),
        (43, "reasons", "unknown question 'relaton'; did you mean 'relation'?"),
        (47, "concerns", "min_choices 3 is impossible with 2 options"),
        (48, "concerns", "max_choices must be at least 1"),
        (53, "concerns", "cannot depend on 'reasons'"),
        (54, "relation", "duplicate question id 'relation' (first at line 10)"),
        (61, "compensation", "can never be shown: no answer to 'necessity'"),
        (69, "first", "loop: first → second → first"),
        (70, "first", "refers to 'second', which comes later"),
        (79, "phone", "needs 'consent'"),
        (86, "a_very_long_question_identifier", "button data for option 'this_option_code_is_rather_long'"),
    ]
    assert len(errors) == len(expected), "\n".join(map(str, errors))
    for error, (line, question, fragment) in zip(errors, expected, strict=True):
        assert (error.line, error.question) == (line, question), str(error)
        assert fragment in error.message, str(error)


def test_broken_file_cannot_be_loaded() -> None:
    with pytest.raises(SurveyFileError) as caught:
        load_survey(BROKEN)
    assert len(caught.value.errors) == 25
    assert caught.value.path == str(BROKEN)
    lines = str(caught.value).splitlines()
    assert len(lines) == 25
    assert lines[0] == f"{BROKEN}:2: survey: missing required key 'title'"
    assert lines[5] == f"{BROKEN}:16: [relation] duplicate option code 'owner' (first at line 14)"


# --- errors and their wording ------------------------------------------------------------------------


def test_error_text_names_line_and_question() -> None:
    assert str(SurveyError(12, "relation", "bad")) == "12: [relation] bad"
    assert str(SurveyError(3, "", "bad")) == "3: bad"
    error = SurveyFileError("s.yaml", [SurveyError(1, "", "one"), SurveyError(2, "q", "two")])
    assert str(error) == "s.yaml:1: one\ns.yaml:2: [q] two"


def test_parse_survey_names_the_source() -> None:
    with pytest.raises(SurveyFileError) as caught:
        parse_survey("id: x\n", source="mine.yaml")
    assert caught.value.path == "mine.yaml"
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert all(line.startswith("mine.yaml:1: survey: missing required key") for line in lines)


def test_missing_file_is_an_error_at_line_zero(tmp_path: Path) -> None:
    with pytest.raises(SurveyFileError) as caught:
        load_survey(tmp_path / "nope.yaml")
    [error] = caught.value.errors
    assert (error.line, error.question) == (0, "")
    assert "cannot read the file" in error.message


def test_undecodable_file_is_an_error_at_line_zero(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes(survey().encode("gbk"))
    with pytest.raises(SurveyFileError) as caught:
        load_survey(path)
    assert [e.line for e in caught.value.errors] == [0]


def test_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + survey().encode())
    assert load_survey(path).id == "base"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("id: x\nversion: 1\ntitle: [a\nquestions: []\n", 4, "expected ',' or ']'"),
        ("id: x\nversion: 1\n  title: a\n", 3, "mapping values are not allowed here"),
        ("id: x\n\tversion: 1\n", 2, "indent with spaces, not tabs"),
        ('id: x\ntitle: "abc\n\n', 4, "(started at line 2)"),
        ("id: a\n---\nid: b\n", 2, "expected a single document"),
        ("id: x\x07\n", 1, "character YAML does not allow"),
        ("# nothing here\n", 1, "the file is empty"),
    ],
)
def test_yaml_syntax_error_is_reported_with_its_line(text: str, line: int, fragment: str) -> None:
    error = only_error(text)
    assert error.line == line and error.question == ""
    assert fragment in error.message


# --- one case per check ------------------------------------------------------------------------------

# (extra questions or a whole survey, question id expected in the error, words expected in the message)
CASES: dict[str, tuple[str, str, str]] = {
    "unknown question key": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          hepl: 写几句 #!
        """,
        "extra",
        "unknown key 'hepl'; did you mean 'help'?",
    ),
    "key of another type": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          options: #!
            - a: A
            - b: B
        """,
        "extra",
        "'options' does not apply to a text question",
    ),
    "min on a multi question": (
        """\
        - id: extra
          type: multi
          text: 选哪些？
          min: 1 #!
          options: [{a: A}, {b: B}]
        """,
        "extra",
        "'min' does not apply to a multi question; did you mean 'min_choices'?",
    ),
    "missing text": (
        """\
        - id: extra #!
          type: text
        """,
        "extra",
        "missing required key 'text'",
    ),
    "missing type": (
        """\
        - id: extra #!
          text: 还有吗？
        """,
        "extra",
        "missing required key 'type'",
    ),
    "unknown type": (
        """\
        - id: extra
          type: multiple #!
          text: 还有吗？
        """,
        "extra",
        "one of single, multi, scale, text, number, phone, not 'multiple'; did you mean 'multi'?",
    ),
    "required not a boolean": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          required: maybe #!
        """,
        "extra",
        "required must be true or false, not 'maybe'",
    ),
    "text is a list": (
        """\
        - id: extra
          type: text
          text: [还有, 吗] #!
        """,
        "extra",
        "text must be text, not a list",
    ),
    "empty text": (
        """\
        - id: extra
          type: text
          text: #!
        """,
        "extra",
        "text is empty",
    ),
    "options not a list": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options: owner #!
        """,
        "extra",
        "options must be a list",
    ),
    "option without a code": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options:
            - 产权人 #!
            - b: B
            - c: C
        """,
        "extra",
        "an option must be 'code: label'",
    ),
    "long option form missing its label": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options:
            - {code: a} #!
            - b: B
            - c: C
        """,
        "extra",
        "option: missing required key 'label'",
    ),
    "question is not a mapping": (
        """\
        - 您觉得怎么样？ #!
        """,
        "",
        "a question must be a mapping",
    ),
    "bad question id": (
        """\
        - id: extra question #!
          type: text
          text: 还有吗？
        """,
        "",
        "question id 'extra question' must be 1 to 32 letters",
    ),
    "question id too long": (
        f"""\
        - id: {"q" * 33} #!
          type: text
          text: 还有吗？
        """,
        "",
        "must be 1 to 32 letters",
    ),
    "bad option code": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options:
            - 是: 是 #!
            - no: 否
        """,
        "extra",
        "option code '是' must be 1 to 32 letters",
    ),
    "duplicate question id": (
        """\
        - id: relation #!
          type: text
          text: 还有吗？
        """,
        "relation",
        "duplicate question id 'relation' (first at line 8)",
    ),
    "duplicate option code": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options:
            - a: 甲
            - b: 乙
            - a: 丙 #!
        """,
        "extra",
        "duplicate option code 'a'",
    ),
    "labels equal but for punctuation": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options:
            - a: 同意
            - b: 同意。 #!
        """,
        "extra",
        "option 'b' has the same label as option 'a'",
    ),
    "single with one option": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options: #!
            - a: 甲
        """,
        "extra",
        "at least 2 options",
    ),
    "multi with one option": (
        """\
        - id: extra
          type: multi
          text: 选哪些？
          options: [{a: 甲}] #!
        """,
        "extra",
        "at least 2 options",
    ),
    "single without options": (
        """\
        - id: extra #!
          type: single
          text: 选哪个？
        """,
        "extra",
        "a single question needs options",
    ),
    "options on a scale": (
        """\
        - id: extra
          type: scale
          text: 几分？
          min: 1
          max: 5
          options: [{a: A}, {b: B}] #!
        """,
        "extra",
        "'options' does not apply to a scale question",
    ),
    "scale min equals max": (
        """\
        - id: extra
          type: scale
          text: 几分？
          min: 3
          max: 3 #!
        """,
        "extra",
        "a scale needs min below max, not 3 to 3",
    ),
    "scale too wide": (
        """\
        - id: extra
          type: scale
          text: 几分？
          min: 0
          max: 11 #!
        """,
        "extra",
        "a scale of 12 points is too wide",
    ),
    "scale without max": (
        """\
        - id: extra #!
          type: scale
          text: 几分？
          min: 1
        """,
        "extra",
        "missing required key 'max'",
    ),
    "scale bounds not whole": (
        """\
        - id: extra
          type: scale
          text: 几分？
          min: 1
          max: 4.5 #!
        """,
        "extra",
        "max must be a whole number, not '4.5'",
    ),
    "scale label outside the range": (
        """\
        - id: extra
          type: scale
          text: 几分？
          min: 1
          max: 5
          labels:
            1: 很差
            6: 很好 #!
        """,
        "extra",
        "label for point 6 lies outside the scale 1 to 5",
    ),
    "max_length zero": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          max_length: 0 #!
        """,
        "extra",
        "max_length must be 1 to 4000, not 0",
    ),
    "max_length too large": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          max_length: 4001 #!
        """,
        "extra",
        "max_length must be 1 to 4000, not 4001",
    ),
    "min_choices above the options": (
        """\
        - id: extra
          type: multi
          text: 选哪些？
          min_choices: 3 #!
          options: [{a: A}, {b: B}]
        """,
        "extra",
        "min_choices 3 is impossible with 2 options",
    ),
    "max_choices zero": (
        """\
        - id: extra
          type: multi
          text: 选哪些？
          max_choices: 0 #!
          options: [{a: A}, {b: B}]
        """,
        "extra",
        "max_choices must be at least 1, not 0",
    ),
    "min_choices above max_choices": (
        """\
        - id: extra
          type: multi
          text: 选哪些？
          min_choices: 2
          max_choices: 1 #!
          options: [{a: A}, {b: B}, {c: C}]
        """,
        "extra",
        "max_choices 1 is below min_choices 2",
    ),
    "number min above max": (
        """\
        - id: extra
          type: number
          text: 多少？
          min: 10
          max: 1 #!
        """,
        "extra",
        "max 1 is below min 10",
    ),
    "number range holds no whole number": (
        """\
        - id: extra
          type: number
          text: 多少？
          min: 1.2
          max: 1.8 #!
        """,
        "extra",
        "no whole number lies between min 1.2 and max 1.8",
    ),
    "phone without consent": (
        """\
        - id: phone2 #!
          type: phone
          text: 请输入电话。
        """,
        "phone2",
        "a phone question needs 'consent'",
    ),
    "when on an unknown question": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            relatoin: [owner] #!
        """,
        "extra",
        "when refers to unknown question 'relatoin'; did you mean 'relation'?",
    ),
    "when on an unknown option": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            relation: [owner, tennant] #!
        """,
        "extra",
        "'relation' has no option 'tennant'; did you mean 'tenant'?",
    ),
    "when on a scale point that does not exist": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            necessity: [5] #!
        """,
        "extra",
        "'necessity' has no point '5'",
    ),
    "when on a text answer": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            reasons: [x] #!
        """,
        "extra",
        "when cannot depend on 'reasons'",
    ),
    "when on a phone answer": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            phone: {min: 1} #!
        """,
        "extra",
        "when cannot depend on 'phone'",
    ),
    "when on itself": (
        """\
        - id: extra
          type: single
          text: 选哪个？
          options: [{a: A}, {b: B}]
          when:
            extra: [a] #!
        """,
        "extra",
        "when refers to the question itself",
    ),
    "when with a range on a choice question": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            relation: {min: 1} #!
        """,
        "extra",
        "'relation' is a choice question: list option codes, not a range",
    ),
    "when with codes on a number question": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            household: [3] #!
        """,
        "extra",
        "'household' is a number question: give a range",
    ),
    "when range with min above max": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            household: {min: 5, max: 2} #!
        """,
        "extra",
        "when range for 'household' has min 5 above max 2",
    ),
    "when range with a misspelt key": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            household: {min: 1,
              maxx: 2} #!
        """,
        "extra",
        "unknown key 'maxx'; did you mean 'max'?",
    ),
    "when is a list": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when: [relation] #!
        """,
        "extra",
        "when must map question ids to the answers",
    ),
    "when is empty": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when: #!
        """,
        "extra",
        "not empty",
    ),
    "scale condition outside the scale": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when: #!
            necessity: {min: 5}
        """,
        "extra",
        "the question can never be shown: no answer to 'necessity' meets its conditions",
    ),
    "number condition outside the number range": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when: #!
            household: {min: 31, max: 40}
        """,
        "extra",
        "can never be shown: no answer to 'household'",
    ),
    "number condition between whole numbers": (
        """\
        - id: extra
          type: text
          text: 还有吗？
          when: #!
            household: {min: 2.2, max: 2.8}
        """,
        "extra",
        "can never be shown: no answer to 'household'",
    ),
    "conditions contradicting an earlier question's": (
        """\
        - id: owner_only
          type: single
          text: 补偿方案能接受吗？
          options: [{yes: 能}, {no: 不能}]
          when:
            relation: [owner]
        - id: extra
          type: text
          text: 为什么？
          when: #!
            owner_only: [no]
            relation: [tenant, nearby]
        """,
        "extra",
        "no answer to 'relation' meets its conditions and those of 'owner_only', which it depends on",
    ),
    "multi condition beyond max_choices": (
        """\
        - id: one_concern
          type: multi
          text: 最担心哪一项？
          max_choices: 1
          options: [{noise: 噪音}, {dust: 扬尘}]
        - id: extra
          type: text
          text: 为什么？
          when:
            relation: [owner]
        - id: extra2
          type: text
          text: 还有吗？
          when:
            one_concern: [noise]
        - id: extra3
          type: single
          text: 还有吗？
          options: [{a: A}, {b: B}]
          when:
            one_concern: [dust]
        - id: final
          type: text
          text: 最后？
          when: #!
            extra3: [a]
            one_concern: [noise]
        """,
        "final",
        "no answer to 'one_concern' meets its conditions and those of 'extra3'",
    ),
    "button data over 64 bytes": (
        f"""\
        - id: {LONG_ID}
          type: single
          text: 选哪个？
          options:
            - {longest_code(LONG_ID)}c: 甲 #!
            - b: 乙
        """,
        LONG_ID,
        f"over Telegram's {CALLBACK_LIMIT}",
    ),
    "option label too long": (
        f"""\
        - id: extra
          type: single
          text: 选哪个？
          options:
            - a: {"长" * (LABEL_LIMIT + 1)} #!
            - b: 乙
        """,
        "extra",
        f"option 'a' label is {LABEL_LIMIT + 1} characters",
    ),
    "scale label too long for a button": (
        f"""\
        - id: extra
          type: scale
          text: 几分？
          min: 1
          max: 2
          labels:
            1: {"长" * (LABEL_LIMIT - 1)} #!
        """,
        "extra",
        "label of point 1 is too long for a button",
    ),
    "question too long for a message": (
        f"""\
        - id: extra
          type: text
          text: {"字" * (MESSAGE_LIMIT - FRAME_RESERVE - 1)} #!
          help: 您好
        """,
        "extra",
        f"one message holds {MESSAGE_LIMIT}",
    ),
    "question with its options too long for a message": (
        f"""\
        - id: extra
          type: single
          text: {"字" * (MESSAGE_LIMIT - FRAME_RESERVE - 19)} #!
          options: [{{a: 甲甲甲甲甲甲}}, {{b: 乙乙乙乙乙乙}}]
        """,
        "extra",
        f"one message holds {MESSAGE_LIMIT}",
    ),
    "phone consent too long for a message": (
        f"""\
        - id: phone2
          type: phone
          consent: {"字" * (MESSAGE_LIMIT - FRAME_RESERVE + 1)} #!
          text: 请输入电话。
        """,
        "phone2",
        f"one message holds {MESSAGE_LIMIT}",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_each_check_reports_its_mistake_at_the_right_place(name: str) -> None:
    extra, question, fragment = CASES[name]
    assert_error_at_mark(survey(extra), question, fragment)


def test_cycle_is_reported_with_its_path() -> None:
    text = survey(
        """\
        - id: a
          type: single
          text: 甲？
          options: [{x: X}, {y: Y}]
          when: #!
            b: [x]
        - id: b
          type: single
          text: 乙？
          options: [{x: X}, {y: Y}]
          when:
            c: [x]
        - id: c
          type: single
          text: 丙？
          options: [{x: X}, {y: Y}]
          when:
            a: [y]
        """
    )
    loops = [e for e in check_survey(text) if "loop" in e.message]
    assert [(e.line, e.question, e.message) for e in loops] == [
        (marked_line(text), "a", "when makes a loop: a → b → c → a")
    ]
    later = [e.question for e in check_survey(text) if "comes later" in e.message]
    assert later == ["a", "b"]


def test_depending_on_a_question_never_shown_is_reported() -> None:
    text = survey(
        """\
        - id: never
          type: single
          text: 不会问到
          options: [{a: A}, {b: B}]
          when:
            necessity: {min: 9}
        - id: extra
          type: text
          text: 还有吗？
          when: #!
            never: [a]
        """
    )
    errors = check_survey(text)
    assert [(e.question, e.message) for e in errors] == [
        ("never", "the question can never be shown: no answer to 'necessity' meets its conditions"),
        ("extra", "the question can never be shown: it depends on 'never', which can never be shown"),
    ]
    assert errors[1].line == marked_line(text)


def test_a_later_question_is_refused_even_without_a_loop() -> None:
    text = survey(
        """\
        - id: extra
          type: text
          text: 还有吗？
          when:
            after: [x] #!
        - id: after
          type: single
          text: 后面的题
          options: [{x: X}, {y: Y}]
        """
    )
    assert_error_at_mark(text, "extra", "when refers to 'after', which comes later")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (HEADER.replace("title: 测试问卷\n", ""), "survey: missing required key 'title'"),
        (HEADER.replace("id: base", "id: base survey"), "survey id 'base survey' must be 1 to 32 letters"),
        (HEADER.replace("version: 1", "version: 0"), "version must be a positive whole number, not '0'"),
        (HEADER.replace("version: 1", "version: -2"), "version must be a positive whole number"),
        (HEADER.replace("version: 1", "version: 1.5"), "version must be a positive whole number, not '1.5'"),
        (HEADER.replace("version: 1", "version: yes"), "version must be a positive whole number, not 'yes'"),
        (HEADER.replace("version: 1", "version: '2'"), "version must be a positive whole number, not '2'"),
        (HEADER + "owner: 某区政府\n", "survey: unknown key 'owner'"),
        (HEADER.replace("intro:", "intor:"), "unknown key 'intor'; did you mean 'intro'?"),
        (HEADER.replace("  notice: 仅用于测试。\n", "  notise: 仅用于测试。\n"), "did you mean 'notice'?"),
        (HEADER + "  anonymous:\n", "to offer no anonymous choice, leave consent anonymous out"),
        (HEADER + "  decline: 同意，开始填写\n", "consent decline has the same label as consent agree"),
        (HEADER + f"  agree: {'好' * (LABEL_LIMIT + 1)}\n", f"a button holds {LABEL_LIMIT}"),
        (HEADER + "id: again\n", "survey: duplicate key 'id' (first at line 1)"),
    ],
)
def test_survey_level_mistakes(header: str, fragment: str) -> None:
    errors = check_survey(header + QUESTIONS)
    assert [fragment in e.message for e in errors].count(True) == 1, "\n".join(map(str, errors))
    # Some mistakes bring a second one (a misspelt key is also a missing one); none points at a question.
    assert all(e.question == "" for e in errors)


def test_misspelt_survey_key_points_at_its_line() -> None:
    text = HEADER.replace("intro:", "intor:") + QUESTIONS
    [error] = check_survey(text)
    assert (error.line, error.question) == (4, "")


def test_intro_and_notice_must_fit_one_message() -> None:
    room = MESSAGE_LIMIT - FRAME_RESERVE - len("测试问卷") - len("仅用于测试。")
    fits = HEADER.replace("intro: 您好。", f"intro: {'好' * room}")
    assert check_survey(fits + QUESTIONS) == []
    too_long = HEADER.replace("intro: 您好。", f"intro: {'好' * (room + 1)}")
    [error] = check_survey(too_long + QUESTIONS)
    assert (error.line, error.question) == (5, "")
    assert f"one message holds {MESSAGE_LIMIT}" in error.message


def test_questions_must_be_a_non_empty_list() -> None:
    [error] = check_survey(HEADER + "questions: []\n")
    assert (error.line, error.message) == (7, "questions: the survey has no questions")
    [error] = check_survey(HEADER + "questions:\n  relation: 关系\n")
    assert error.line == 8 and "questions must be a list" in error.message


def test_limits_are_inclusive() -> None:
    """Values exactly at each limit are accepted, so the checks above fail only past them."""
    code = longest_code(LONG_ID)
    assert worst_case_length(LONG_ID, code) == CALLBACK_LIMIT
    longest = "长" * LABEL_LIMIT
    # Options are counted as the numbered lines the engine may list them in.
    room = MESSAGE_LIMIT - FRAME_RESERVE - len("1. 甲\n") - len(f"2. {longest}\n")
    text = survey(
        f"""\
        - id: {LONG_ID}
          type: single
          text: {"字" * room}
          options:
            - {code}: 甲
            - b: {longest}
        - id: scale11
          type: scale
          text: 几分？
          min: 0
          max: 10
          labels: {{0: 很差, 10: 很好}}
        - id: text4000
          type: text
          text: 还有吗？
          max_length: 4000
        - id: choose
          type: multi
          text: 选哪些？
          min_choices: 2
          max_choices: 2
          options: [{{a: A}}, {{b: B}}]
        - id: phone2
          type: phone
          consent: {"字" * (MESSAGE_LIMIT - FRAME_RESERVE)}
          text: 请输入电话。
        """
    )
    assert check_survey(text) == []


def test_flexible_spellings_are_accepted() -> None:
    text = survey(
        """\
        - id: extra
          type: single
          text: 选哪个？
          required: no
          options:
            - yes: 是
            - {code: 1, label: 一}
            - 2: 二
          when:
            relation: owner
            necessity: [3, 4]
            household: {max: 5}
            concerns: [noise, dust]
        """
    )
    q = parse_survey(text).question("extra")
    assert q is not None and not q.required
    assert [o.code for o in q.options] == ["yes", "1", "2"]
    assert q.when == (
        Condition("relation", codes=frozenset({"owner"})),
        Condition("necessity", codes=frozenset({"3", "4"})),
        Condition("household", maximum=5),
        Condition("concerns", codes=frozenset({"noise", "dust"})),
    )


def test_mistakes_in_the_same_question_are_all_reported() -> None:
    text = survey(
        """\
        - id: extra
          type: scale
          text: 几分？
          min: 1
          max: 1
          grievance: true
          when:
            nothing: [x]
        """
    )
    messages = [e.message for e in check_survey(text)]
    assert len(messages) == 3
    assert any("'grievance' does not apply" in m for m in messages)
    assert any("min below max" in m for m in messages)
    assert any("unknown question 'nothing'" in m for m in messages)


def test_a_broken_question_does_not_drag_its_dependants_in() -> None:
    text = survey(
        """\
        - id: broken_scale
          type: scale
          text: 几分？
          min: 5
          max: 1 #!
        - id: broken_type
          type: choice
          text: 选哪个？
        - id: extra
          type: text
          text: 还有吗？
          when: {broken_scale: [3], broken_type: [a]}
        """
    )
    errors = check_survey(text)
    assert [e.question for e in errors] == ["broken_scale", "broken_type"], "\n".join(map(str, errors))
    assert errors[0].line == marked_line(text)


# --- the hash ----------------------------------------------------------------------------------------

SMALL = """\
id: small
version: 1
title: 小问卷
consent:
  notice: |
    仅用于测试。
questions:
  - id: attitude
    type: single
    text: 您的态度？
    options:
      - support: 支持
      - oppose: 不支持
  - id: reasons
    type: text
    text: 为什么？
    when:
      attitude: [oppose]
  - id: household
    type: number
    text: 家里几口人？
    min: 1
    max: 30
"""

SMALL_REWRITTEN = """\
# the same survey, written differently
questions:
- {type: single, id: attitude, text: "您的态度？", required: true,
   options: [{code: support, label: 支持}, {oppose: 不支持}]}
-   when: {attitude: oppose}     # one code needs no list
    text: '为什么？'
    max_length: 500
    id: reasons
    type: text
- {id: household, type: number, text: 家里几口人？, min: 1.0, max: 30.0, integer: true}
consent: {notice: 仅用于测试。, agree: 同意，开始填写}
title: 小问卷
version: 1
id: small
"""


def test_hash_ignores_layout_comments_key_order_and_defaults() -> None:
    assert survey_hash(SMALL) == survey_hash(SMALL_REWRITTEN)
    example = EXAMPLE.read_text(encoding="utf-8")
    content = yaml.safe_load(example)
    dumped = yaml.safe_dump(content, allow_unicode=True, sort_keys=True, default_flow_style=True)
    assert dumped != example
    assert survey_hash(dumped) == survey_hash(example)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("title: 小问卷", "title: 小问卷二"),
        ("version: 1", "version: 2"),
        ("仅用于测试。", "仅用于本次评估。"),
        ("- oppose: 不支持", "- oppose: 反对"),
        ("      - support: 支持\n      - oppose: 不支持", "      - oppose: 不支持\n      - support: 支持"),
        ("attitude: [oppose]", "attitude: [support]"),
        ("    text: 为什么？\n", "    text: 为什么？\n    required: false\n"),
        ("    text: 为什么？\n", "    text: 为什么？\n    grievance: true\n"),
    ],
)
def test_hash_changes_with_content(old: str, new: str) -> None:
    changed = SMALL.replace(old, new)
    assert changed != SMALL and check_survey(changed) == []
    assert survey_hash(changed) != survey_hash(SMALL)


def test_hash_ignores_the_order_of_conditions_and_codes() -> None:
    def with_when(when: str) -> str:
        return survey(f"- id: extra\n  type: text\n  text: 还有吗？\n  when: {when}\n")

    first = with_when("{relation: [owner, tenant], necessity: [3, 4]}")
    assert survey_hash(first) == survey_hash(with_when("{necessity: [4, 3], relation: [tenant, owner]}"))
    assert survey_hash(first) != survey_hash(with_when("{necessity: [4], relation: [tenant, owner]}"))


def test_hash_is_the_same_in_every_process() -> None:
    """Sets iterate in an order that changes with PYTHONHASHSEED; the hash must not."""
    code = f"from bot.survey_file import survey_hash; print(survey_hash(open({str(EXAMPLE)!r}).read()))"
    hashes = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in range(4)
    }
    assert hashes == {survey_hash(EXAMPLE.read_text(encoding="utf-8"))}


def test_hash_of_an_invalid_survey_is_refused() -> None:
    with pytest.raises(SurveyFileError):
        survey_hash(SMALL.replace("version: 1", "version: 0"))
