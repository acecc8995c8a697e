"""Append-only audit log of page views, exports and study runs: who, what, when, never a case value.

One JSON object per line, appended with ``O_APPEND`` so that concurrent sessions never
overwrite each other. Details are names and counts (a page, a table, a format), not data.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from dashboards.access import Viewer

Event = Literal["page_view", "export", "study_run", "denied", "login"]


def record(path: Path, viewer: Viewer | None, event: Event, page: str, **details: str | int) -> None:
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": viewer.user if viewer else None,
        "role": viewer.role if viewer else None,
        "agency_id": viewer.agency_id if viewer else None,
        "event": event,
        "page": page,
        **details,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
    finally:
        os.close(descriptor)


def read_log(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
