"""Planning survives hostile input: every file is audited or skipped with a reason, never fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostile import make_hostile_repo, nested_ifs, source_text, vanishing
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from aixaudit import audit, sources
from aixaudit.audit import AuditOptions
from aixaudit.languages import LimitReason
from aixaudit.scoring import AcceptanceRule
from aixaudit.store.tables import Blob, File, Point, Run

ENTRIES = 300
# What planning makes of the files of each category (None: audited).
OUTCOMES = {
    "source": None,
    "bom": None,
    "binary": "binary",
    "invalid_utf8": "not_utf8",
    "nul_after_8k": "binary",
    "non_utf8_name": "name_not_utf8",
    "fifo": "special_file",
    "dangling_link": "dangling_symlink",
    "symlink_loop": "symlink_loop",
    "gitignore": "unsupported_language",
    "huge_line": "too_large",
    "many_lines": None,
    "nested_if": None,
}


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("hostile")
    return root, make_hostile_repo(root, ENTRIES)


def _plan(engine: Engine, root: Path, options: AuditOptions) -> int:
    checkout = sources.Checkout(root=root, origin=str(root), commit=None, ref=None)
    return audit.plan_run(
        sessionmaker(engine), checkout=checkout, options=options, rule=AcceptanceRule()
    )


def _files(engine: Engine, run_id: int) -> dict[str, File]:
    with sessionmaker(engine)() as session:
        return {f.path: f for f in session.scalars(select(File).where(File.run_id == run_id))}


def _as_stored(path: str) -> str:
    """A path as the store keeps it: bytes that are not UTF-8 written as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _assert_audited_or_skipped(files: dict[str, File]) -> None:
    for path, file in files.items():
        if file.skip_reason is None:
            assert file.sha256 is not None, path
        else:
            assert file.sha256 is None and file.skip_reason.strip(), path


def test_hostile_repository_plans_with_a_reason_for_every_file(
    engine: Engine, hostile_repo: tuple[Path, dict[str, list[str]]]
) -> None:
    root, made = hostile_repo
    assert set(OUTCOMES) <= set(made)
    with vanishing(root / "volatile"):
        run_id = _plan(engine, root, AuditOptions(max_points=60))
    files = _files(engine, run_id)
    _assert_audited_or_skipped(files)
    for category, reason in OUTCOMES.items():
        for path in map(_as_stored, made[category]):
            assert files[path].skip_reason == reason, (category, path, files[path].detail)

    with sessionmaker(engine)() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.points_total == 60
        points = session.execute(
            select(Point, File.path, Blob.text)
            .join(File, Point.file_id == File.id)
            .join(Blob, Blob.sha256 == File.sha256)
            .where(Point.run_id == run_id)
        ).all()
        stored_blobs = set(session.scalars(select(Blob.sha256)))
    assert len(points) == 60
    for point, path, text in points:
        assert files[path].skip_reason is None
        original = text.encode()[point.start_byte : point.end_byte].decode()
        assert point.original == original, point.key
    audited = {f.sha256 for f in files.values() if f.skip_reason is None}
    assert audited <= stored_blobs


def test_files_over_parse_limits_are_skipped_and_the_rest_planned(
    engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "small.py").write_text(source_text(".py", 1))
    (tmp_path / "nested.js").write_text(nested_ifs(8000))  # 88 KB, about 72,000 syntax nodes

    files = _files(engine, _plan(engine, tmp_path, AuditOptions(max_nodes=10_000)))
    assert files["small.py"].skip_reason is None
    nested = files["nested.js"]
    assert (nested.skip_reason, nested.sha256) == (LimitReason.TOO_COMPLEX, None)
    assert nested.detail is not None and "over 10000" in nested.detail

    # Any parse that is still running at its first progress check is over this limit.
    files = _files(engine, _plan(engine, tmp_path, AuditOptions(parse_timeout_s=1e-9)))
    _assert_audited_or_skipped(files)
    assert files["nested.js"].skip_reason == LimitReason.PARSE_TIMEOUT
