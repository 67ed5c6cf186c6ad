"""Post-processing re-parses each candidate incrementally from the file's own tree: on real
files in every language, that must give exactly what parsing each file from scratch gives."""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
import tree_sitter

from aixaudit import postprocess
from aixaudit.languages import Language, get_language, language_for_path, parse
from aixaudit.postprocess import _Insertion, trim_and_check
from aixaudit.spans import find_spans

STDLIB = Path(sysconfig.get_paths()["stdlib"])
POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"
# Files with the pitfalls of incremental parsing: multi-byte UTF-8 before and inside spans,
# CRLF line ends, and syntax errors elsewhere in the file.
CRAFTED = {
    "unicode.py": "# é\ndef f(naïve):\n    s = '漢字😀'\n    return naïve + len(s)\n\n"
    "def g(x):\n    return (x +\n\ndef h():\n    return 'ü'\n",
    "crlf.go": 'package p\r\n\r\nfunc f(x int) int {\r\n\ts := "é漢"\r\n'
    "\treturn x + len(s)\r\n}\r\n",
    "broken.c": "int g(void) { return 1 @ 2; }\n\nint f(int x) {\n  /* ß */ x += 1;\n"
    "  return x;\n}\n",
    "tail.rs": 'fn f() -> usize {\n    "😀".len()\n}\n\nfn g(a: i32) -> i32 {\n    a * 2\n}',
}
BODIES = 6  # what each span is replaced with (see `_bodies`)


def _real_files() -> list[tuple[str, Language, bytes]]:
    files = [(name, language_for_path(name), text.encode()) for name, text in CRAFTED.items()]
    paths = [STDLIB / name for name in ("textwrap.py", "json/decoder.py")]
    # Python 2 grammar (errors throughout), a non-ASCII file, CRLF: where CPython ships them.
    data = STDLIB / "lib2to3" / "tests" / "data"
    paths += [data / name for name in ("py2_test_grammar.py", "different_encoding.py", "crlf.py")]
    paths += sorted(p for p in POLYGLOT.rglob("*") if p.is_file() and language_for_path(str(p)))
    files += [(p.name, language_for_path(str(p)), p.read_bytes()) for p in paths if p.is_file()]
    return [(name, language, source) for name, language, source in files if language]


FILES = _real_files()


def _edits(language: Language, source: bytes) -> Iterator[tuple[int, int, str]]:
    """(start, end, kind) of spans: some of the file's own, the first and the last line, and an
    empty span at the very end."""
    spans = find_spans(language, source)
    picked = spans[:1] + spans[-1:] + spans[1:-1][:: max(1, len(spans) // 3)]
    for span in picked:
        yield span.start_byte, span.end_byte, span.kind.value
    first_end = source.find(b"\n")
    yield 0, first_end if first_end > 0 else len(source), "statement"
    last_start = source.rstrip(b"\r\n").rfind(b"\n") + 1
    yield last_start, len(source.rstrip(b"\r\n")), "statements"
    yield len(source), len(source), "statements"


def _bodies(prefix: str, original: str, suffix: str) -> list[str]:
    """The original, nothing, an echo of what follows and of what precedes (as the fixed-cost
    model answers), multi-byte text before it, and its first half."""
    bodies = [
        original,
        "",
        original + "\n" + suffix[:120],
        prefix[-120:],
        "é = '漢字😀'\n" + original,
        original[: len(original) // 2],
    ]
    assert len(bodies) == BODIES
    return bodies


def _cases() -> Iterator[tuple[Language, str, str, str, str, str]]:
    for _, language, source in FILES:
        for start, end, kind in _edits(language, source):
            prefix, suffix = source[:start].decode(), source[end:].decode()
            original = source[start:end].decode()
            for body in _bodies(prefix, original, suffix):
                yield language, kind, prefix, original, suffix, body


def _shape(root: tree_sitter.Node) -> list[tuple[object, ...]]:
    """Every node's type, flags, byte range and points, in document order."""
    nodes: list[tuple[object, ...]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        nodes.append(
            (node.type, node.is_missing, node.has_error, node.start_byte, node.end_byte,
             tuple(node.start_point), tuple(node.end_point))
        )  # fmt: skip
        stack.extend(reversed(node.children))
    return nodes


def test_the_corpus_has_every_pitfall() -> None:
    languages = {language.name for _, language, _ in FILES}
    assert languages >= {"python", "java", "javascript", "typescript", "go", "rust", "c", "cpp"}
    assert any(parse(language, source).root_node.has_error for _, language, source in FILES)
    assert any(len(source) != len(source.decode()) for _, _, source in FILES)  # multi-byte
    assert any(b"\r\n" in source for _, _, source in FILES)


@pytest.mark.parametrize(("name", "language", "source"), FILES, ids=[f[0] for f in FILES])
def test_each_candidates_tree_is_the_tree_of_a_full_parse(
    name: str, language: Language, source: bytes
) -> None:
    for start, end, _ in _edits(language, source):
        prefix, suffix = source[:start].decode(), source[end:].decode()
        original = source[start:end].decode()
        insertion = _Insertion(language, prefix, original, suffix)
        for body in _bodies(prefix, original, suffix):
            edited = insertion.parse(body.encode()).root_node
            full = parse(language, (prefix + body + suffix).encode()).root_node
            where = (name, start, end, body[:40])
            # Error recovery may place ERROR nodes differently when it reuses subtrees (seen in
            # Rust); a tree with errors fails the check either way, which the next test covers.
            assert edited.has_error == full.has_error, where
            if not full.has_error:
                assert _shape(edited) == _shape(full), where


def test_trimming_and_the_check_equal_those_on_full_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = list(_cases())
    fast = [_trim_and_check(*case) for case in cases]

    def full_parse(language: Language, source: bytes, **_: object) -> tree_sitter.Tree:
        return parse(language, source)  # no old tree: every candidate from scratch

    monkeypatch.setattr(postprocess, "parse", full_parse)
    postprocess._file_tree.cache_clear()
    slow = [_trim_and_check(*case) for case in cases]
    assert fast == slow
    # Not a vacuous comparison: candidates were cut, kept whole, and judged both ways.
    assert {parses for _, parses in fast} == {True, False}
    assert any(text and text != case[-1] for (text, _), case in zip(fast, cases, strict=True))


def test_the_shape_check_skips_only_subtrees_a_full_walk_finds_equal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Subtrees that tree-sitter reports unchanged are not walked: the same cuts and verdicts
    as walking every node, on the same pitfalls."""
    cases = list(_cases())
    skipping = [_trim_and_check(*case) for case in cases]
    monkeypatch.setattr(postprocess._Changed, "unchanged", _same_subtree_only)
    walking = [_trim_and_check(*case) for case in cases]
    assert skipping == walking
    assert {parses for _, parses in skipping} == {True, False}


def _same_subtree_only(
    changed: postprocess._Changed, a: tree_sitter.Node, b: tree_sitter.Node
) -> bool:
    """The shortcut before changed ranges: only one subtree both parses share."""
    return (
        a.id == b.id
        and postprocess._apart(a, *changed.span)
        and postprocess._apart(b, *changed.completion)
    )


def _trim_and_check(
    language: Language, kind: str, prefix: str, original: str, suffix: str, body: str
) -> tuple[str, bool]:
    return trim_and_check(
        body, language=language, kind=kind, prefix=prefix, original=original, suffix=suffix
    )


def test_the_file_tree_is_parsed_once_for_all_points_of_a_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = CRAFTED["unicode.py"]
    parsed: list[bool] = []

    def counting(language: Language, text: bytes, **options: object) -> tree_sitter.Tree:
        parsed.append("old_tree" in options)
        return parse(language, text, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(postprocess, "parse", counting)
    postprocess._file_tree.cache_clear()
    python = get_language("python")
    for original in ("return naïve + len(s)", "return 'ü'"):
        prefix, suffix = source.split(original)
        assert trim_and_check(
            original, language=python, kind="statement", prefix=prefix, original=original,
            suffix=suffix,
        ) == (original, True)  # fmt: skip
    # One full parse of the file; the original itself needs no re-parse at all.
    assert parsed == [False]
