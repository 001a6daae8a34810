"""Tokeniser: dictionary words, stopwords, folding of traditional and full-width text, pickling."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

from nlp.tokenize import fold_with_offsets, normalize, stopwords, tokenize


def test_project_dictionary_keeps_domain_words_whole() -> None:
    tokens = tokenize("过渡费三个月没发，安置房还没盖，渣土车天天从门口过，网格员也不管，稳评怎么做的")
    for word in ("过渡费", "安置房", "渣土车", "网格员", "稳评"):
        assert word in tokens


def test_stopwords_dropped_but_negations_kept() -> None:
    tokens = tokenize("我们的补偿款没有到位，不公开")
    assert "的" not in tokens
    assert "我们" not in tokens
    assert "没有" in tokens or "没" in tokens
    assert "不" in tokens or "不公开" in tokens
    assert "不" not in stopwords() and "没" not in stopwords()


def test_traditional_and_full_width_fold_to_the_same_tokens() -> None:
    assert tokenize("補償款太低，過渡費也沒給") == tokenize("补偿款太低，过渡费也没给")
    assert normalize("ＡＢＣ１２３，") == "abc123,"
    assert tokenize("ＷｉＦｉ信号差") == tokenize("wifi信号差")


def test_punctuation_emoji_and_empty_text_give_no_tokens() -> None:
    assert tokenize("") == []
    assert tokenize("😡😡😡！！！") == []
    assert tokenize("   \n ") == []


def test_mixed_chinese_and_english() -> None:
    tokens = tokenize("The noise 噪音 is terrible 太吵了")
    assert "噪音" in tokens and "noise" in tokens


def test_long_text_is_tokenised_completely() -> None:
    text = "施工噪音很大" * 1700
    tokens = tokenize(text)
    assert len(text) > 10_000
    assert tokens.count("噪音") == 1700


def test_tokenize_pickles_by_reference() -> None:
    assert pickle.loads(pickle.dumps(tokenize)) is tokenize


def test_fold_with_offsets_points_back_into_the_original() -> None:
    text = "我們 不想上訪！ＡＢ"
    folded, offsets = fold_with_offsets(text)
    assert folded == "我们不想上访!ab"
    start = folded.index("上访")
    assert text[offsets[start] : offsets[start + 1] + 1] == "上訪"


def test_jieba_start_up_prints_nothing() -> None:
    root = Path(__file__).resolve().parents[2]
    code = "from nlp.tokenize import tokenize; print(tokenize('测试一下'))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "Building prefix dict" not in done.stderr
    assert done.stderr.strip() == ""
