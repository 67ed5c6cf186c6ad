"""Syntax-aware trimming of a raw completion, and the check that it fits its span.

A FIM model rarely stops exactly at the end of the masked span: it runs on into the next
statement, closes the function and starts another, or is cut mid-word by the token limit.
Benchmarks trim with the syntax tree before scoring, and so does an IDE plugin before showing a
suggestion; scoring the raw text would measure the stopping criterion rather than the code.

Two rules live here:

- SAFIM's (`safim_trim`), reproduced exactly from gonglinyuan/safim `prompt_utils.py` at
  `SAFIM_COMMIT` (pinned by tests/fixtures/safim_truncation.json): blocks drop trailing lines
  until the file has no ERROR node and the file's node-type sequence is the one without the span
  plus one inserted run (`truncate_line_until_block`); conditions end at the unmatched `)`
  (Python: the first non-blank line); calls end at the `)` that closes the first `(`.
- Ours (`trim_completion`), used by audits: candidate cuts by the span's kind; the longest
  that `parses_after_insert` accepts wins, else the empty suggestion (the raw text is stored
  beside it). That check is stricter than SAFIM's sequence check, which a completion that
  closes the function and opens a new one of the same shape passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import tree_sitter

from aixaudit.languages import Language, parse

SAFIM_REPO = "gonglinyuan/safim"
SAFIM_COMMIT = "95432865d458d86458cfaff05fc8e6893dd20ff1"

_MIN_DUPLICATE_CHARS = 3
_CLOSING_BRACKETS = ")]}"
# Span kinds whose completion is one or more statements (the others are expressions).
_STATEMENT_KINDS = frozenset({"function_body", "block_body", "statement", "statements"})
# Definitions: the scope judged when the original file already has syntax errors.
_SCOPE_TYPES = frozenset(
    {
        "function_definition", "class_definition",  # Python, C, C++
        "method_declaration", "constructor_declaration", "class_declaration",
        "interface_declaration", "enum_declaration", "record_declaration",  # Java
        "function_declaration", "generator_function_declaration", "method_definition",
        "function_expression", "arrow_function", "class", "abstract_class_declaration",  # JS, TS
        "func_literal",  # Go (function_declaration, method_declaration above)
        "function_item", "impl_item", "trait_item", "mod_item", "closure_expression",  # Rust
        "class_specifier", "struct_specifier", "namespace_definition", "lambda_expression",  # C++
    }
)  # fmt: skip
# A statement that is only a name or a member chain does nothing; it is what a token-limit cut
# leaves (`binary.BigEndian.PutUint1`), so it never ends a suggestion.
_NAME_TYPES = frozenset(
    {
        "identifier", "attribute", "selector_expression", "member_expression",
        "field_expression", "field_access", "scoped_identifier", "qualified_identifier",
    }
)  # fmt: skip
_STATEMENT_WRAPPER = "expression_statement"


class SafimNotApplicable(ValueError):
    """SAFIM's block truncation asserts that the file without the span parses; here it did not."""


# --- SAFIM, reproduced ------------------------------------------------------------------------


def safim_trim(completion: str, *, language: Language, kind: str, prefix: str, suffix: str) -> str:
    """SAFIM's post-processor for the split a span kind belongs to: conditions are its control
    split, calls and argument lists its API split, bodies and statements its block split."""
    if kind == "condition":
        return safim_truncate_control(completion, language=language)
    if kind in ("call", "arguments"):
        return safim_truncate_api_call(completion)
    return safim_truncate_line_until_block(
        completion, language=language, prefix=prefix, suffix=suffix
    )


def safim_truncate_control(completion: str, *, language: Language) -> str:
    """Python: the first non-blank line; other languages: up to the first unmatched `)`."""
    if language.name == "python":
        return next((line for line in completion.splitlines() if line.strip()), "")
    depth = 0
    for i, char in enumerate(completion):
        depth += (char == "(") - (char == ")")
        if depth == -1:
            return completion[:i]
    return completion


def safim_truncate_api_call(completion: str) -> str:
    """Up to and including the first `)` that brings the bracket depth to zero or below."""
    depth = 0
    for i, char in enumerate(completion):
        depth += (char == "(") - (char == ")")
        if char == ")" and depth <= 0:
            return completion[: i + 1]
    return completion


def safim_truncate_line_until_block(
    completion: str, *, language: Language, prefix: str, suffix: str
) -> str:
    """Drop trailing lines until the file has no ERROR node (one that is just `;` aside) and
    its node-type sequence, minus the longest common prefix and suffix with the sequence of the
    file without the span (Python: with `pass` there, 4 events), is empty; "" if no line count
    qualifies. Raises SafimNotApplicable where SAFIM's assertion would fail."""
    lines = completion.splitlines(keepends=True)
    python = language.name == "python"
    gap: list[tuple[bool, str]] | None = None
    while lines:
        trace, errors = _safim_trace(parse(language, (prefix + "".join(lines) + suffix).encode()))
        if errors:
            lines.pop()
            continue
        if gap is None:
            filler = "pass" if python else ""
            gap, gap_errors = _safim_trace(parse(language, (prefix + filler + suffix).encode()))
            if gap_errors:
                raise SafimNotApplicable("SAFIM needs the file without the span to parse.")
        if len(gap) > len(trace):
            lines.pop()
            continue
        unmatched = len(gap) - _common_prefix(gap, trace) - _common_prefix(gap[::-1], trace[::-1])
        if unmatched - (4 if python else 0) == 0:
            break
        lines.pop()
    return "".join(lines)


def _safim_trace(tree: tree_sitter.Tree) -> tuple[list[tuple[bool, str]], int]:
    """(enter?, type) for every node in document order, not descending into ERROR nodes, and
    the number of ERROR nodes whose text is not `;` (SAFIM's ErrorCheckVisitor)."""
    events: list[tuple[bool, str]] = []
    errors = 0
    stack: list[tuple[tree_sitter.Node, bool]] = [(tree.root_node, False)]
    while stack:
        node, leaving = stack.pop()
        events.append((not leaving, node.type))
        if leaving:
            continue
        stack.append((node, True))
        if node.type == "ERROR":
            errors += node.text != b";"
        else:
            stack.extend((child, False) for child in reversed(node.children))
    return events, errors


def _common_prefix(a: Sequence[object], b: Sequence[object]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


# --- ours ----------------------------------------------------------------------------------


def trim_completion(
    raw: str,
    *,
    language: Language,
    kind: str,
    prefix: str,
    original: str,
    suffix: str,
    stop_words: Sequence[str] = (),
) -> str:
    """The part of `raw` a user would get for the span; "" when no cut fits.

    1. Stop strings: cut at the earliest occurrence of any of `stop_words`.
    2. Cut by the span's kind: candidates are the ends of the syntax units the completion starts
       with (an expression ends at the end of its node, a condition where its header needs it
       to), SAFIM's cut for the kind, whole lines, and, for statement kinds, every complete
       statement. The longest that `parses_after_insert` accepts is kept, provided that an
       expression kind's cut is one node where the original was one, and that a statement
       kind's does not end on a statement that is only a name (`...PutUint1`, what a token
       limit leaves). So a completion that closes the enclosing scope or opens a new
       definition is cut before it.
    3. Suffix duplicate, for statement kinds: if the result ends with text that the suffix
       starts with (whitespace around both ignored), drop the longest such overlap that is a
       whole non-blank line of the suffix or at least 3 characters and does not start inside a
       word, provided what is left is not blank and still fits. (An expression that ends like
       the suffix starts, `a.f(0)` before `.f(0)`, is as likely right as repeated.)
    """
    insertion = _Insertion(language, prefix, original, suffix)
    return _trim(insertion, raw, kind, suffix, stop_words)


def trim_and_check(
    raw: str,
    *,
    language: Language,
    kind: str,
    prefix: str,
    original: str,
    suffix: str,
    stop_words: Sequence[str] = (),
) -> tuple[str, bool]:
    """`trim_completion` and `parses_after_insert` of what it keeps, as an audit needs both:
    one insertion serves the two, so the kept text's file is not parsed again."""
    insertion = _Insertion(language, prefix, original, suffix)
    kept = _trim(insertion, raw, kind, suffix, stop_words)
    return kept, insertion.fits(kept)


def _trim(
    insertion: _Insertion, raw: str, kind: str, suffix: str, stop_words: Sequence[str]
) -> str:
    text = cut_at_stop_words(raw, stop_words).rstrip()
    fitting = (c for c in _candidates(text, kind, insertion) if insertion.fits(c, kind))
    kept = next(fitting, "")
    if kept and kind in _STATEMENT_KINDS:
        return _drop_suffix_duplicate(kept, insertion, suffix, kind)
    return kept


def parses_after_insert(
    *, language: Language, prefix: str, original: str, completion: str, suffix: str
) -> bool:
    """Whether the completion takes the original's place and nothing else changes.

    The scope is the whole file, or, when the original file already has syntax errors, the
    innermost definition around the span. In the file with the completion inserted: the
    scope's node is still there (same type, same start, end moved by the length difference);
    every node of it not wholly inside the completion has the same type, nesting and order as
    the original's nodes not wholly inside the span (so closing the function and opening a new
    one fails, however alike they look); no ERROR or MISSING node lies inside the completion
    (unless the original's span was inside one too); and the completion is not blank.
    """
    return _Insertion(language, prefix, original, suffix).fits(completion)


def cut_at_stop_words(text: str, stop_words: Sequence[str]) -> str:
    """Text up to the earliest occurrence of any (non-empty) stop string."""
    cuts = [i for i in (text.find(word) for word in stop_words if word) if i >= 0]
    return text[: min(cuts)] if cuts else text


class _Insertion:
    """The original file around the span, ready to take candidate completions.

    Whole-file parses are most of an audit's CPU time, and trimming one completion tries several
    candidates. So the file is parsed once (and kept for the other points of the same file),
    and each candidate replaces the span in an edited copy of that tree and re-parses it
    incrementally: tree-sitter reuses every subtree the edit does not touch.
    """

    def __init__(self, language: Language, prefix: str, original: str, suffix: str) -> None:
        self.language, self.prefix, self.suffix = language, prefix.encode(), suffix.encode()
        self.original = original.encode()
        self.start = len(self.prefix)
        self.original_size = len(self.original)
        self._start_point = _point(self.prefix, (0, 0))
        self._original_end = _point(self.original, self._start_point)
        self.tree = _file_tree(language, self.prefix + self.original + self.suffix)
        self._trees: dict[bytes, tree_sitter.Tree] = {self.original: self.tree}
        # Byte ranges (in the new file) whose syntax tree changed, by inserted body.
        self._changed: dict[bytes, list[tuple[int, int]]] = {self.original: []}
        self.scope = self.tree.root_node
        if self.scope.has_error:
            self.scope = _enclosing_scope(self.scope, self.start, self.start + self.original_size)
        # Errors inside the span itself (a span an ERROR node wraps, as a macro call may be).
        self.broken = _broken_inside(self.scope, self.start, self.start + self.original_size)

    def parse(self, body: bytes) -> tree_sitter.Tree:
        """The file with `body` in the span's place."""
        if body not in self._trees:
            tree = self.tree.copy()
            at = self.start
            tree.edit(
                start_byte=at,
                old_end_byte=at + self.original_size,
                new_end_byte=at + len(body),
                start_point=self._start_point,
                old_end_point=self._original_end,
                new_end_point=_point(body, self._start_point),
            )
            new = parse(self.language, self.prefix + body + self.suffix, old_tree=tree)
            self._trees[body] = new
            self._changed[body] = [(r.start_byte, r.end_byte) for r in tree.changed_ranges(new)]
        return self._trees[body]

    def fits(self, completion: str, kind: str | None = None) -> bool:
        """`parses_after_insert`; for trimming to a `kind`, also: an expression kind's completion
        is as many nodes as the original, a statement kind's does not end on a name-only
        statement."""
        expression = kind is not None and kind not in _STATEMENT_KINDS
        body = completion.encode()
        if not body.strip():
            return False
        root = self.parse(body).root_node
        end = self.start + len(body)
        scope: tree_sitter.Node | None = root
        if self.scope.parent is not None:
            delta = len(body) - self.original_size
            scope = _node_at(
                root, self.scope.start_byte, self.scope.end_byte + delta, self.scope.type
            )
        if scope is None or _broken_inside(scope, self.start, end) > self.broken:
            return False
        span = (self.start, self.start + self.original_size)
        changed = _Changed(self._changed[body], span, (self.start, end))
        if not _same_shape(self.scope, scope, changed, expression):
            return False
        return not (kind in _STATEMENT_KINDS and _ends_on_a_name(root, self.start, end))


@lru_cache(maxsize=4)
def _file_tree(language: Language, source: bytes) -> tree_sitter.Tree:
    """The original file, parsed once for all its points (an audit asks them file by file)."""
    return parse(language, source)


def _point(text: bytes, start: tuple[int, int]) -> tuple[int, int]:
    """Where `text` ends, as tree-sitter's (row, byte column), when it starts at `start`."""
    rows = text.count(b"\n")
    if rows == 0:
        return start[0], start[1] + len(text)
    return start[0] + rows, len(text) - text.rfind(b"\n") - 1


def _enclosing_scope(root: tree_sitter.Node, start: int, end: int) -> tree_sitter.Node:
    """The innermost definition strictly around [start, end), or the root."""
    node = root.descendant_for_byte_range(start, end)
    while node is not None and node.parent is not None:
        wider = node.start_byte < start or node.end_byte > end
        if wider and node.type in _SCOPE_TYPES:
            return node
        node = node.parent
    return root


def _node_at(
    root: tree_sitter.Node, start: int, end: int, node_type: str
) -> tree_sitter.Node | None:
    node = root.descendant_for_byte_range(start, end)
    while node is not None and node.start_byte == start and node.end_byte == end:
        if node.type == node_type:
            return node
        node = node.parent
    return None


def _inside(node: tree_sitter.Node, start: int, end: int) -> bool:
    return start <= node.start_byte and node.end_byte <= end


@dataclass(frozen=True)
class _Changed:
    """Where the file with the completion differs from the original: the span (original
    bytes), the completion (new bytes), and the ranges tree-sitter's `changed_ranges` reports
    (new bytes; outside them every character has the same ancestors in both trees)."""

    ranges: list[tuple[int, int]]
    span: tuple[int, int]
    completion: tuple[int, int]

    def unchanged(self, a: tree_sitter.Node, b: tree_sitter.Node) -> bool:
        """Whether `b` (new) is `a` (original) moved, with the same subtree: away from the
        insertion, at `a`'s place, outside every changed range, error-free, and (cheap
        insurance) as many descendants."""
        span, completion = self.span, self.completion
        if not (_apart(a, *span) and _apart(b, *completion)):
            return False
        if a.id == b.id:
            return True  # one subtree both incremental parses reused
        shift = 0 if a.end_byte < span[0] else completion[1] - span[1]
        start, end = b.start_byte, b.end_byte
        if start != a.start_byte + shift or end != a.end_byte + shift or b.has_error:
            return False
        if any(low <= end and start <= high for low, high in self.ranges):
            return False
        return a.descendant_count == b.descendant_count


def _same_shape(
    original: tree_sitter.Node, inserted: tree_sitter.Node, changed: _Changed, count: bool
) -> bool:
    """Whether two scopes have the same nodes, in the same nesting and order, where each run of
    sibling nodes wholly inside the span (or the completion) counts as one (of its length if
    `count`). Subtrees away from the insertion that tree-sitter reports unchanged, and leaves
    of the same type, are equal without a walk: this keeps the check cheap in long files."""
    if not _same_type(original, inserted):
        return False
    stack = [(original, inserted)]
    while stack:
        a, b = stack.pop()
        if changed.unchanged(a, b):
            continue
        runs_a, runs_b = _runs(a, *changed.span, count), _runs(b, *changed.completion, count)
        if len(runs_a) != len(runs_b):
            return False
        for x, y in zip(runs_a, runs_b, strict=True):
            if isinstance(x, int) or isinstance(y, int):
                if not (isinstance(x, int) and isinstance(y, int) and x == y):
                    return False
            elif not _same_type(x, y):
                return False
            elif x.child_count or y.child_count:
                stack.append((x, y))
    return True


def _same_type(a: tree_sitter.Node, b: tree_sitter.Node) -> bool:
    """Node types compared by symbol first (an int), by name where symbols differ (aliases)."""
    return a.kind_id == b.kind_id or a.type == b.type


def _apart(node: tree_sitter.Node, start: int, end: int) -> bool:
    return node.end_byte < start or node.start_byte > end


def _runs(
    node: tree_sitter.Node, start: int, end: int, count: bool
) -> list[tree_sitter.Node | int]:
    """The children of `node`, each run of them wholly inside [start, end] replaced by a number."""
    runs: list[tree_sitter.Node | int] = []
    for child in node.children:
        if not _inside(child, start, end):
            runs.append(child)
        elif runs and isinstance(runs[-1], int):
            runs[-1] += count
        else:
            runs.append(int(count))
    return runs


def _broken_inside(scope: tree_sitter.Node, start: int, end: int) -> int:
    """How many subtrees wholly inside [start, end] hold an ERROR or MISSING node (a MISSING
    `;` at `end` counts); outermost ones only."""
    broken = 0
    stack = [scope]
    while stack:
        node = stack.pop()
        if not node.has_error or node.end_byte < start or node.start_byte > end:
            continue
        if _inside(node, start, end):
            broken += 1
        else:
            stack.extend(node.children)
    return broken


def _ends_on_a_name(root: tree_sitter.Node, start: int, end: int) -> bool:
    """Whether the completion [start, end) ends on an expression statement that is a name."""
    node = root.descendant_for_byte_range(max(end - 1, start), end)
    while node is not None and _inside(node, start, end):
        if node.end_byte == end and node.type == _STATEMENT_WRAPPER:
            return node.named_child_count == 1 and node.named_children[0].type in _NAME_TYPES
        node = node.parent
    return False


def _candidates(text: str, kind: str, insertion: _Insertion) -> list[str]:
    """Non-blank cuts of `text`, longest first, each once, without trailing whitespace (the
    original, a syntax node, has none: the suffix holds what follows it)."""
    body = text.encode()
    cuts = {len(body)} | {len(text[:i].encode()) for i, c in enumerate(text) if c == "\n"}
    cuts |= set(_unit_ends(insertion, body, kind in _STATEMENT_KINDS))
    first_line = text.split("\n", 1)[0]
    cuts |= {
        len(first_line[: i + 1].encode())
        for i, c in enumerate(first_line)
        if c in _CLOSING_BRACKETS
    }
    if kind in ("condition", "call", "arguments"):
        safim = (
            safim_truncate_control(text, language=insertion.language)
            if kind == "condition"
            else safim_truncate_api_call(text)
        )
        cuts.add(len(safim.encode()))
    texts = (body[:cut].decode(errors="ignore").rstrip() for cut in sorted(cuts, reverse=True))
    return list(dict.fromkeys(t for t in texts if t.strip()))


def _unit_ends(insertion: _Insertion, body: bytes, statements: bool) -> Iterator[int]:
    """Where the syntax units the completion starts with end (relative to the completion), and
    with `statements`, where each of the following sibling units ends."""
    start = insertion.start + len(body) - len(body.lstrip())
    end = insertion.start + len(body)
    root = insertion.parse(body).root_node
    node = root.descendant_for_byte_range(start, start)
    first = None
    while node is not None and node.start_byte == start and node.end_byte <= end:
        yield node.end_byte - insertion.start
        first, node = node, node.parent
    if statements and first is not None and first.parent is not None:
        for sibling in first.parent.children:
            if _inside(sibling, start, end):
                yield sibling.end_byte - insertion.start


def _drop_suffix_duplicate(text: str, insertion: _Insertion, suffix: str, kind: str) -> str:
    body = text.rstrip()
    head = suffix.lstrip()
    for size in range(min(len(body), len(head)), 0, -1):
        if not body.endswith(head[:size]) or not _counts_as_duplicate(head, size):
            continue
        shortened = body[:-size]
        if _is_word_char(shortened[-1:]) and _is_word_char(head[0]):
            continue  # the overlap starts inside a word: "to|tal" is no repetition of "tal"
        shortened = shortened.rstrip()
        if shortened.strip() and insertion.fits(shortened, kind):
            return shortened
    return text


def _counts_as_duplicate(head: str, size: int) -> bool:
    """Long enough to be a real repetition: 3+ characters, or a whole non-blank line."""
    overlap = head[:size]
    whole_line = size == len(head) or head[size] in "\r\n"
    return len(overlap.strip()) >= _MIN_DUPLICATE_CHARS or (whole_line and bool(overlap.strip()))


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"
