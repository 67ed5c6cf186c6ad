from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from aixaudit.tokens import (
    ApproximateTokenizer,
    ModelTokenizer,
    keep_first,
    keep_first_counted,
    keep_last,
    keep_last_counted,
)

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


def test_counted_keeps_give_the_count_of_what_they_keep(cpu_model_dir: Path) -> None:
    # A real file with multi-byte text; budgets that keep all of it, cut it, or keep nothing.
    text = Path(__file__).with_name("test_postprocess_reparse.py").read_text(encoding="utf-8")
    for counter in (COUNTER, ModelTokenizer(cpu_model_dir)):
        whole = counter.count(text)
        for budget in (0, 1, 7, 300, whole - 1, whole, whole + 50):
            for keep, counted in ((keep_last, keep_last_counted), (keep_first, keep_first_counted)):
                kept = keep(counter, text, budget)
                assert counted(counter, text, budget) == (kept, counter.count(kept))
                assert (kept == text) == (budget >= whole)


def test_a_model_tokenizer_pickles_as_its_path(cpu_model_dir: Path) -> None:
    """Scoring processes get the counter with every answer: it must not carry the tokenizer."""
    counter = ModelTokenizer(cpu_model_dir)
    sent = pickle.dumps(counter)
    assert len(sent) < 1000
    received = pickle.loads(sent)
    assert received.count("def f(x):\n    return x") == counter.count("def f(x):\n    return x")
    assert received.sha256 == counter.sha256
    assert pickle.loads(sent) is received  # loaded once per process
