"""The contract suites in a process of their own, started ahead so that Great Expectations' import is done
by the time the raw zone is ready.

Importing Great Expectations costs more CPU than ingesting the demo federation (seconds: scipy, pandas,
SQLAlchemy, its own data context), and the suites gate the models, so in the run's own process that
import sat on the critical path. ``parcours run`` now starts this process first (``start_ahead``): it
imports Great Expectations on the second core while Dagster starts and the landing files are ingested,
then waits. The ingestion step hands it the raw zone's queries and waits for the outcomes
(``validate``), which gate the models as before: nothing downstream runs on an unchecked raw zone.

The process serves every request of its parent (a test session runs many pipelines: one import per
process, as before) and ends when its parent closes its input, or dies. It runs ``quality.suites.validate_queries``
unchanged: the same checkpoint, Data Docs and outcomes (counts and rates only). What Great Expectations
would have logged or warned in the run's process is logged or warned again by the parent, so a quiet run
counts it and ``--verbose`` shows it as before; an exception in the suites is raised again in the parent
with its class and message, as it would have been raised in process. Requests and replies are pickled
on the child's standard input and a duplicate of its standard output; what libraries print goes to its
standard error, which is discarded.
"""

from __future__ import annotations

import atexit
import builtins
import logging
import os
import pickle
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from pipelines.contract import Contract
    from quality.suites import ExpectationOutcome

ENVIRONMENT_PREFIX = "PARCOURS_"
"""The parent's variables of this prefix are the child's for each request (DuckDB's limits and spill
folder, read when a connection opens), whatever they were when it started."""


class SuitesProcessError(RuntimeError):
    """The suites' process failed (its exit status) or the suites raised (their exception's class and message)."""


@dataclass(frozen=True)
class Request:
    queries: dict[str, str]
    contract: Contract
    today: date
    data_docs: Path | None
    environment: dict[str, str]
    working_directory: str


@dataclass
class Reply:
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    warned: list[tuple[str, str]] = field(default_factory=list)
    """(category's name, message) of each Python warning, in order."""
    logged: list[tuple[str, int, str]] = field(default_factory=list)
    """(logger, level, message) of each log record at WARNING or above."""
    error: tuple[str, str] | None = None
    """(class name, message) of what the suites raised."""


class SuitesProcess:
    """A started child serving ``Request`` after ``Request``; ``validate`` from one thread at a time."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)  # where ``quality`` and ``pipelines`` are imported from
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        self._child = subprocess.Popen(
            [sys.executable, "-m", "quality.suites_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
        )
        self._lock = threading.Lock()
        self._owner = os.getpid()

    def alive(self) -> bool:
        return self._child.poll() is None

    def mine(self) -> bool:
        """Started by this process (a forked process must not write to its parent's child)."""
        return self._owner == os.getpid()

    def validate(
        self, queries: dict[str, str], contract: Contract, today: date, data_docs: Path | None = None
    ) -> list[ExpectationOutcome]:
        """``quality.suites.validate_queries(queries, contract, today, None, data_docs)``, run in the child."""
        with self.validating(queries, contract, today, data_docs) as pending:
            return pending.outcomes()

    @contextmanager
    def validating(
        self, queries: dict[str, str], contract: Contract, today: date, data_docs: Path | None = None
    ) -> Iterator[Pending]:
        """The request sent, its answer to be read by ``Pending.outcomes`` within the block: what the caller
        does meanwhile overlaps the suites. A block left without reading it reads it then and drops it (the
        next request must not find it on the pipe), or, left by an exception, ends the child instead of waiting;
        other threads wait for the block to end."""
        request = Request(
            queries=queries,
            contract=contract,
            today=today,
            data_docs=None if data_docs is None else data_docs.absolute(),
            environment={k: v for k, v in os.environ.items() if k.startswith(ENVIRONMENT_PREFIX)},
            working_directory=str(Path.cwd()),
        )
        with self._lock:
            pending = Pending(self)
            try:
                assert self._child.stdin is not None
                pickle.dump(request, self._child.stdin)
                self._child.stdin.flush()
            except BrokenPipeError:
                pending.failed()
            try:
                yield pending
            except BaseException:
                # The block failed (or the run is interrupted): its answer must neither be waited for (minutes
                # at the largest sizes) nor left on the pipe for the next request. The child goes; the next
                # request starts another (``suites_process``).
                if pending.unread():
                    self._child.kill()
                    self._child.wait()
                raise
            pending.drain()

    def _read_reply(self) -> Reply:
        assert self._child.stdout is not None
        try:
            reply: Reply = pickle.load(self._child.stdout)  # noqa: S301 (our own child's pipe)
        except (EOFError, pickle.UnpicklingError):
            self._ended()
        return reply

    def _ended(self) -> NoReturn:
        status = self._child.wait()
        raise SuitesProcessError(f"the contract suites' process ended before answering (exit status {status})")

    def close(self) -> None:
        """Close its input, so that it ends; ended at once if it is still importing."""
        if self._child.stdin is not None and not self._child.stdin.closed:
            self._child.stdin.close()
        try:
            self._child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


class Pending:
    """A request sent to the suites' child (``SuitesProcess.validating``), its answer not yet read."""

    def __init__(self, process: SuitesProcess) -> None:
        self._process = process
        self._reply: Reply | None = None
        self._sent = True

    def failed(self) -> None:
        """The request could not be sent: the child has ended."""
        self._sent = False

    def outcomes(self) -> list[ExpectationOutcome]:
        """Wait for the answer; what the child warned or logged is warned or logged here, what the suites
        raised is raised again (``SuitesProcessError``)."""
        if not self._sent:
            self._process._ended()
        if self._reply is None:
            self._reply = self._process._read_reply()
        reply = self._reply
        for category, message in reply.warned:
            kind = getattr(builtins, category, None)
            warnings.warn(
                message, kind if isinstance(kind, type) and issubclass(kind, Warning) else UserWarning, stacklevel=3
            )
        for name, level, message in reply.logged:
            logging.getLogger(name).log(level, message)
        if reply.error is not None:
            kind_name, message = reply.error
            raise SuitesProcessError(f"{kind_name}: {message}")
        return reply.outcomes

    def unread(self) -> bool:
        return self._sent and self._reply is None

    def drain(self) -> None:
        """Read the answer if nobody did (it is dropped), so that the pipe holds no stale reply."""
        if self.unread():
            with suppress(SuitesProcessError):
                self._reply = self._process._read_reply()


_process: SuitesProcess | None = None
_process_lock = threading.Lock()


def start_ahead() -> None:
    """Start this process's suites' child now, if none is running, so that its imports overlap what comes
    before the suites. Cheap: it imports nothing heavy here."""
    global _process
    with _process_lock:
        if _process is None or not _process.mine() or not _process.alive():
            if _process is None:
                atexit.register(_close)
            _process = SuitesProcess()


def _close() -> None:
    if _process is not None and _process.mine():
        _process.close()


def suites_process() -> SuitesProcess:
    """The running child (started now if ``start_ahead`` was not called or it has ended)."""
    start_ahead()
    assert _process is not None
    return _process


# --- the child --------------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


@contextmanager
def _reported() -> Iterator[Reply]:
    """A reply holding what the block warns and logs (WARNING and above), in order."""
    reply = Reply()
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("default")
            caught = recorded
            yield reply
    finally:
        root.removeHandler(records)
        reply.warned = [(w.category.__name__, str(w.message)) for w in caught]
        reply.logged = records.records


def _answer(request: Request) -> Reply:
    from quality.suites import validate_queries

    for name in [k for k in os.environ if k.startswith(ENVIRONMENT_PREFIX)]:
        del os.environ[name]
    os.environ.update(request.environment)
    os.chdir(request.working_directory)
    with _reported() as reply:
        try:
            reply.outcomes = validate_queries(request.queries, request.contract, request.today, None, request.data_docs)
        except Exception as exc:  # raised again by the parent, with its class and message
            reply.error = (type(exc).__name__, str(exc))
    return reply


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Answer each pickled ``Request`` on ``requests`` with a pickled ``Reply`` on ``replies``, until the end
    of ``requests``. Great Expectations is imported first: that is what the parent started this process for."""
    failed: tuple[str, str] | None = None
    # What the imports warn (pyspark's notice on pandas, Great Expectations' own) goes back with the first
    # reply, as it was counted (or shown) in the run's process when the import happened there.
    with _reported() as imports:
        try:
            import great_expectations  # noqa: F401

            import quality.suites  # noqa: F401
            from quality import sql_dialect  # noqa: F401
        except Exception as exc:
            failed = (type(exc).__name__, str(exc))
    warned, logged = imports.warned, imports.logged
    while True:
        try:
            request: Any = pickle.load(requests)  # noqa: S301 (our own parent's pipe)
        except EOFError:
            return
        reply = Reply(error=failed) if failed is not None else _answer(request)
        reply.warned, reply.logged = warned + reply.warned, logged + reply.logged
        warned, logged = [], []
        pickle.dump(reply, replies)
        replies.flush()


def main() -> None:
    # Great Expectations imports pyspark whenever it is installed, to offer a Spark datasource: 0.3 s before
    # the first request, 259 modules and two of pandas' warnings. The suites read the warehouse through SQL
    # alone, so this process, which serves nothing else, tells it pyspark is absent (an import of it fails).
    sys.modules["pyspark"] = None  # type: ignore[assignment]
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what libraries print must not mix with the replies
    serve(sys.stdin.buffer, replies)
    # Every reply is written and flushed, and each request's checkpoint and Data Docs are on disk: what is
    # left is Python taking Great Expectations' objects apart, 0.6 s that the parent's exit waited for.
    replies.close()
    os._exit(0)


if __name__ == "__main__":
    # Run as ``python -m``, this file is ``__main__``: the module proper must answer, so that what is
    # pickled names ``quality.suites_process`` on both sides.
    from quality.suites_process import main as serve_parent

    serve_parent()
