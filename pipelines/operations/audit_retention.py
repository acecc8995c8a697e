"""The dashboards' audit log is kept 12 months, then its entries are deleted (CNIL: 6 to 12 months).

``parcours purge-audit`` and the daily schedule ``audit_log_retention`` remove the entries older than the
retention (``PARCOURS_AUDIT_RETENTION_DAYS``, 365 by default, between 183 and 366), under the lock the
dashboards take to append: the file is rewritten beside itself and renamed into place, and an entry
appended meanwhile is written again to the new file (``dashboards/audit.py``). An entry whose time cannot
be read is kept (deleting what cannot be dated would be a guess).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEFAULT_DAYS = 365
LIMITS = (183, 366)


def retention_days(env: Mapping[str, str] | None = None) -> int:
    value = (os.environ if env is None else env).get("PARCOURS_AUDIT_RETENTION_DAYS", "").strip()
    days = int(value) if value else DEFAULT_DAYS
    if not LIMITS[0] <= days <= LIMITS[1]:
        raise ValueError(f"PARCOURS_AUDIT_RETENTION_DAYS must be between {LIMITS[0]} and {LIMITS[1]} (6 to 12 months)")
    return days


def _recent(line: str, cutoff: datetime) -> bool:
    try:
        at = datetime.fromisoformat(str(json.loads(line)["at"]))
    except (ValueError, KeyError, TypeError):
        return True
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) >= cutoff


def purge_audit_log(path: Path, days: int, now: datetime | None = None) -> tuple[int, int]:
    """Remove the entries older than ``days``; return (kept, removed)."""
    if not path.exists():
        return 0, 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and _recent(line, cutoff)]
        removed = sum(1 for line in lines if line.strip()) - len(kept)
        if removed:
            staged = path.with_name(f".{path.name}.purge")
            staged.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
            staged.chmod(0o640)
            staged.replace(path)
    finally:
        os.close(descriptor)
    return len(kept), removed
