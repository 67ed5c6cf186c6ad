"""CSV answers: the rows of a table the API serves as JSON, for a spreadsheet. Nested objects
flatten into dotted columns (`intervals.acceptance_rate.low`, `scores.exact_match`); a null or
missing value is an empty cell."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


FormatQuery = Annotated[
    Format, Query(alias="format", description="json, or csv: the same rows as a table")
]

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, Mapping):
            cells.update(flatten(value, f"{prefix}{name}."))
        elif isinstance(value, list):
            cells[f"{prefix}{name}"] = " ".join(str(item) for item in value)
        else:
            cells[f"{prefix}{name}"] = value
    return cells


def csv_response(rows: Iterable[Mapping[str, Any]], *, filename: str) -> Response:
    """The rows as a CSV download; the columns are every key met, in the order first met."""
    flat = [flatten(row) for row in rows]
    columns = list(dict.fromkeys(name for row in flat for name in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
