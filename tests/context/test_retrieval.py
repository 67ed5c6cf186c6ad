"""Context strategies: BM25 retrieval, the CrossCodeEval-style header within its budget, where
the context sits in each prompt format, and the index a run builds and the next one reuses
(on SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from aixaudit import audit, incremental, sources
from aixaudit.context import ContextStrategy, Fragment, IndexedFile, build_index, render_context
from aixaudit.context import index as index_module
from aixaudit.context import stored as stored_index
from aixaudit.context.retrieval import similar
from aixaudit.languages import get_language
from aixaudit.prompts import MIDDLE, PRE, build_prompt, get_profile
from aixaudit.scoring import AcceptanceRule
from aixaudit.store import queries
from aixaudit.store.db import session_factory
from aixaudit.store.tables import ContextOutline
from aixaudit.tokens import ApproximateTokenizer

COUNTER = ApproximateTokenizer()
PYTHON = get_language("python")


def indexed(path: str, text: str, language: str = "python") -> IndexedFile:
    return IndexedFile(path, language, hashlib.sha256(text.encode()).hexdigest(), text)


def test_similar_ranks_windows_of_other_files_by_shared_identifiers() -> None:
    ledger = (
        "\n".join(f"line_{i} = {i}" for i in range(10))
        + "\n"
        + (
            "def reconcile_ledger(ledger_rows, fx_table):\n"
            "    return [fx_table.convert(row.amount) for row in ledger_rows]\n"
        )
    )
    noise = "\n".join(f"value_{i} = compute_{i}()" for i in range(40))
    caller = "rows = load()\nfx_table = rates()\ntotal = reconcile_ledger(ledger_rows, fx_table)\n"
    index, _ = build_index(
        [
            indexed("books/ledger.py", ledger),
            indexed("misc/noise.py", noise),
            indexed("app.py", caller),
        ],
        {},
    )
    [best, *_] = similar(index, "app.py", caller, k=3)
    assert best.path == "books/ledger.py"
    assert "def reconcile_ledger(ledger_rows, fx_table):" in best.text
    assert similar(index, "app.py", "nothing_in_common_here = 1\n") == []
    # A repository without a single identifier has nothing to rank, and says so with no error.
    blank, _ = build_index([indexed("a.py", "\n\n"), indexed("b.py", "# ...\n")], {})
    assert similar(blank, "a.py", "x = 1\n") == []


def test_render_is_commented_in_the_files_syntax_and_kept_within_budget() -> None:
    fragments = [
        Fragment("web/math.js", "export function add(a, b)"),
        Fragment("web/far.js", "\n".join(f"export function f{i}(x)" for i in range(200))),
    ]
    javascript = get_language("javascript")
    text = render_context(fragments, language=javascript, counter=COUNTER, budget=120)
    lines = text.splitlines()
    assert lines[:5] == [
        "// Here are some relevant code fragments from other files of the repo:",
        "// the below code fragment can be found in:",
        "// web/math.js",
        "// export function add(a, b)",
        "// the below code fragment can be found in:",
    ]
    assert all(line.startswith("//") for line in lines)
    assert COUNTER.count(text) <= 120
    assert "f199" not in text  # right-truncated
    # A budget smaller than the first fragment leaves no context, not a dangling header.
    assert render_context(fragments[:1], language=javascript, counter=COUNTER, budget=8) == ""


@pytest.mark.parametrize("profile", ["l2r", "aixcoder", "aixcoder-psm"])
def test_context_sits_before_the_files_own_text_in_every_format(profile: str) -> None:
    context = "# Here are some relevant code fragments from other files of the repo:\n# x\n"
    prefix = "".join(f"value_{i} = {i}\n" for i in range(300))
    args = dict(language=PYTHON, path="a.py", prefix=prefix, suffix="end = 1\n", counter=COUNTER)
    bare = build_prompt(get_profile(profile), budget=200, **args)
    with_context = build_prompt(get_profile(profile), budget=200, context=context, **args)
    # The context has its own budget: the file keeps all of its own.
    assert with_context.prefix == bare.prefix and with_context.suffix == bare.suffix
    assert with_context.tokens == bare.tokens + COUNTER.count(context)
    if profile == "l2r":
        assert with_context.text == context + bare.text
    else:
        marker = PRE if profile == "aixcoder-psm" else MIDDLE
        assert with_context.text == bare.text.replace(marker, marker + context, 1)
        assert with_context.text.index(context) < with_context.text.index("# the file path is")


def test_fingerprint_includes_the_strategy_and_its_budget() -> None:
    rule, model = AcceptanceRule(), "m"
    prints = {
        incremental.fingerprint(options=audit.AuditOptions(**extra), rule=rule, model=model)
        for extra in ({}, {"context": "imports"}, {"context": "both"}, {"context_budget": 64})
    }
    assert len(prints) == 4


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def write_repo(root: Path) -> None:
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "prices.py").write_text(
        'def unit_price(sku, catalog):\n    """Price of one unit of `sku`."""\n'
        "    return catalog[sku].price\n"
    )
    (root / "shop" / "cart.py").write_text(
        "from shop.prices import unit_price\n\n\n"
        "def total(items, catalog):\n    amount = 0\n    for sku, count in items:\n"
        "        amount += unit_price(sku, catalog) * count\n    return amount\n\n\n"
        "def empty(items):\n    if not items:\n        return True\n    return False\n"
    )


def test_points_of_a_file_share_one_context_and_outlines_are_reused_by_the_next_run(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    write_repo(repo)
    checkout = sources.checkout(str(repo), ref=None, cache_dir=tmp_path / "cache")
    options = audit.AuditOptions(profile="aixcoder-psm", context=ContextStrategy.IMPORTS)

    def prompts(run_id: int) -> list[str]:
        with sessions() as session:
            pending = queries.pending_points(session, run_id=run_id)
            blobs = queries.get_blobs(session, shas={p.sha256 for p in pending})
        index = stored_index.run_index(sessions, run_id=run_id)
        work = audit.prepare_points(pending, blobs, options, COUNTER, index)
        return [item.prompt.text for item in work if "cart.py" in item.prompt.text]

    first = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
    cart_prompts = prompts(first)
    assert len(cart_prompts) >= 2
    head = cart_prompts[0][: cart_prompts[0].index("# the file path is")]
    assert "# shop/prices.py" in head and '#     """Price of one unit of `sku`."""' in head
    assert all(text.startswith(head) for text in cart_prompts)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ContextOutline)) == 3

    # The next run of the unchanged repository parses nothing for its index.
    monkeypatch.setattr(stored_index, "_last", None)
    monkeypatch.setattr(index_module, "read_outline", _no_parse)
    second = audit.plan_run(sessions, checkout=checkout, options=options, rule=AcceptanceRule())
    assert prompts(second) == cart_prompts


def _no_parse(*args: object) -> None:
    raise AssertionError("an unchanged file was parsed again for the index")
