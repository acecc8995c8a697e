"""One writer at a time on the working database, with a clear message for the run that is refused.

DuckDB lets one process write a database file; a second run started meanwhile (a sensor's run, the
quarterly schedule, an analyst's ``parcours run``) would fail half-way on a lock error, or, between two
steps, interleave its writes with the first. The writer lock is taken for a whole run: a file beside the
database, locked with ``flock`` (released by the system when the holding process ends, even killed),
holding who has it. A second process is refused at once, told which run holds the lock and since when;
the same process may take it again (a run's steps are inside the run's lock).

Runs launched by the Dagster daemon are queued before they start (one run at a time: the
``parcours/writer`` tag's limit in ``deploy/dagster.yaml``); the lock is the guard behind the queue.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

WRITER_TAG = "parcours/writer"
"""The tag every run that writes the working database carries; its concurrency limit is 1."""

_held: dict[Path, int] = {}
_guard = threading.Lock()


class WriterBusyError(RuntimeError):
    """Another process writes the working database."""


def lock_path(warehouse_path: Path) -> Path:
    return warehouse_path.with_name(f".{warehouse_path.name}.writer")


def _holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "another process"
    return f"{data.get('what', 'a run')} (process {data.get('pid', '?')}, since {data.get('since', '?')})"


@contextmanager
def writer_lock(warehouse_path: Path, what: str) -> Iterator[None]:
    """Hold the working database's writer lock; ``WriterBusyError`` at once if another process holds it."""
    path = lock_path(warehouse_path.resolve())
    with _guard:
        if _held.get(path):
            _held[path] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WriterBusyError(
                f"refused: {_holder(path)} is writing to {warehouse_path.name}; one run writes at a time. "
                "Wait for it to end (the Dagster UI or `parcours releases` show it), then start again."
            ) from None
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(descriptor, 0)
        os.write(descriptor, json.dumps({"what": what, "pid": os.getpid(), "since": since}).encode())
        with _guard:
            _held[path] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(path, None)
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
