"""Append-only audit log of page views, exports and study runs: who, what, when, never a case value.

One JSON object per line, appended with ``O_APPEND`` so that concurrent sessions never
overwrite each other. Details are names and counts (a page, a table, a format), not data.
A denial records the identity that was refused (the e-mail a person signed in with is not
case data): without it a denied sign-in could not be traced to anyone.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from dashboards.access import Viewer

Event = Literal["page_view", "export", "study_run", "denied", "login"]


MAX_IDENTITY_LENGTH = 254
"""The longest e-mail address (RFC 5321); a longer identity is cut, so the log cannot be flooded."""


def clean_identity(identity: str | None) -> str | None:
    """A signed-in identity as the log keeps it: trimmed, lower case, no control characters, bounded."""
    if identity is None:
        return None
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", "", identity).strip().lower()
    return text[:MAX_IDENTITY_LENGTH] or None


def record(path: Path, viewer: Viewer | None, event: Event, page: str, **details: str | int) -> None:
    """Append one entry. A detail ``identity`` names who signed in, for an entry without a viewer (a
    denial); it becomes the entry's ``user``."""
    identity = details.pop("identity", None)
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": viewer.user if viewer else clean_identity(None if identity is None else str(identity)),
        "role": viewer.role if viewer else None,
        "agency_id": viewer.agency_id if viewer else None,
        "event": event,
        "page": page,
        **details,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    while True:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            # The retention purge (pipelines/operations/audit_retention.py) replaces the file under this lock:
            # an entry written to the file it replaced would be lost, so it is written again to the new one.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if path.exists() and os.fstat(descriptor).st_ino == path.stat().st_ino:
                os.write(descriptor, line)
                return
        finally:
            os.close(descriptor)


def read_log(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
