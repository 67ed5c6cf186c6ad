"""A run's repository index, from what the run stored: its audited files' texts, and the
outlines that earlier runs (or other workers of this one) already read.

The last index built is kept in the process: every chunk of points a worker answers for the
same files of the same database (the same run, or a run of an unchanged checkout) reuses it.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session, sessionmaker

from aixaudit.store import context as stored
from aixaudit.store import queries

from .index import IndexedFile, RepoIndex, build_index
from .outline import Outline, outline_key

_last: tuple[str, RepoIndex] | None = None


def run_index(session_factory: sessionmaker[Session], *, run_id: int) -> RepoIndex:
    """The index of the run's audited files; outlines it had to read are stored for later."""
    global _last
    with session_factory() as session:
        files = stored.audited_files(session, run_id=run_id)
        database = session.get_bind().engine.url.render_as_string(hide_password=True)
        identity = hashlib.sha256(repr((database, files)).encode()).hexdigest()
        if _last is not None and _last[0] == identity:
            return _last[1]
        keys = {outline_key(language, sha) for _, language, sha in files}
        outlines = {
            key: Outline.from_dict(data)
            for key, data in stored.get_outlines(session, keys=keys).items()
        }
        texts = queries.get_blobs(session, shas={sha for _, _, sha in files})
    index, read = build_index(
        (IndexedFile(path, language, sha, texts[sha]) for path, language, sha in files), outlines
    )
    with session_factory.begin() as session:
        stored.add_outlines(session, outlines={key: o.to_dict() for key, o in read.items()})
    _last = identity, index
    return index
