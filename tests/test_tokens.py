from __future__ import annotations

import hashlib
from pathlib import Path

from aixaudit.tokens import ApproximateTokenizer, ModelTokenizer, keep_first, keep_last

COUNTER = ApproximateTokenizer()


def test_approximate_counter_counts_words_punctuation_and_space_runs() -> None:
    # "x", " ", "=", " ", "f", "(", "1", ")", "\n" -> 9
    assert COUNTER.count("x = f(1)\n") == 9


def test_keep_last_cuts_at_a_line_start() -> None:
    text = "aa bb\ncc dd\nee\n"  # tokens: aa,_,bb,\n,cc,_,dd,\n,ee,\n
    # the last 5 tokens start inside "cc dd": the cut moves on to the next line start
    assert keep_last(COUNTER, text, 5) == "ee\n"
    assert keep_last(COUNTER, text, 10) == text
    assert keep_last(COUNTER, text, 0) == ""


def test_keep_first_cuts_at_a_line_end() -> None:
    text = "aa bb\ncc dd\nee\n"
    # the first 6 tokens end inside "cc dd": the cut moves back to the previous line end
    assert keep_first(COUNTER, text, 6) == "aa bb\n"
    assert keep_first(COUNTER, text, 10) == text
    assert keep_first(COUNTER, text, 0) == ""


def test_a_counter_says_whether_its_counts_are_exact_and_which_file_it_is(
    cpu_model_dir: Path,
) -> None:
    approximate = ApproximateTokenizer()
    assert (approximate.exact, approximate.sha256) == (False, None)
    model = ModelTokenizer(cpu_model_dir)
    digest = hashlib.sha256((cpu_model_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert (model.exact, model.sha256) == (True, digest)
