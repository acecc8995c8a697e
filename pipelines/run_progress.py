"""One line per stage of a run (ingest, quality, models, studies, publication), with counts and time.

``parcours run`` shows these lines instead of Dagster's console log: a Dagster logger
(``progress_logger``) hands every structured event of the run to ``RunProgress``, which groups the
run's steps into stages and writes a stage's line once its last step has ended. Counts come from
the metadata the assets already report (row counts, files by status, publishable studies, cells
released), never from case values. Library warnings and library loggers are counted, not printed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.ingest.load import LANDING_FILES_TABLE, QUARANTINE_TABLE

if TYPE_CHECKING:
    import dagster as dg

STAGES = ("ingest", "quality", "models", "studies", "publication")
"""In the order a run goes through them."""
STAGE_OF_GROUP = {
    "landing": "ingest",
    "ingestion": "ingest",
    "reference": "ingest",
    "quality": "quality",
    "staging": "models",
    "intermediate": "models",
    "marts": "models",
    "ops": "models",
    "studies": "studies",
    "serving": "publication",
}
"""Asset groups and the stage they belong to; an unknown group inherits its inputs' stage."""

Write = Callable[[str], None]


def stage_of_steps(assets: Iterable[dg.AssetsDefinition]) -> dict[str, str]:
    """Each step's stage: its group's, or the latest stage among its inputs' if that comes later.

    A mart built from the studies' results belongs to the studies stage even though it is a mart:
    a stage's line can then be written once, when its steps are done, and stages come in order.
    """
    definitions = list(assets)
    step_of_key = {key: d.node_def.name for d in definitions for key in d.keys}
    rank = {stage: i for i, stage in enumerate(STAGES)}
    own: dict[str, int] = {}
    upstream: dict[str, set[str]] = {}
    for definition in definitions:
        step = definition.node_def.name
        groups = {STAGE_OF_GROUP.get(g) for g in definition.group_names_by_key.values()} - {None}
        own[step] = max((rank[g] for g in groups if g is not None), default=0)
        upstream.setdefault(step, set()).update(
            step_of_key[dep]
            for deps in definition.asset_deps.values()
            for dep in deps
            if dep in step_of_key and step_of_key[dep] != step
        )
    resolved: dict[str, int] = {}

    def resolve(step: str, seen: frozenset[str] = frozenset()) -> int:
        if step not in resolved:
            inputs = [resolve(u, seen | {step}) for u in upstream[step] if u not in seen]
            resolved[step] = max([own[step], *inputs])
        return resolved[step]

    return {step: STAGES[resolve(step)] for step in own}


@dataclass
class StageTally:
    """What one stage did, from its steps' events."""

    steps: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    seconds: float = 0.0
    assets: int = 0
    rows: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    failed_steps: int = 0
    numbers: dict[str, int] = field(default_factory=dict)
    """Counts from the assets' metadata, summed: files by status, publishable studies, cells released..."""
    counted: set[tuple[str, str]] = field(default_factory=set)
    """(step, asset) already counted: a step that materialises a range of partitions in one run reports one
    event per partition, each with the whole batch's metadata (12 partitions of 84 files read 1,008 files)."""

    def add_materialisation(self, asset: str, metadata: Mapping[str, Any], step: str = "") -> None:
        if (step, asset) in self.counted:
            return
        self.counted.add((step, asset))
        self.assets += 1
        rows = metadata.get("dagster/row_count")
        if isinstance(rows, int) and asset == QUARANTINE_TABLE:
            self.numbers["quarantined"] = rows
        elif isinstance(rows, int) and asset != LANDING_FILES_TABLE:  # the ledger counts files, not rows
            self.rows += rows
        for name, value in metadata.items():
            if name.startswith("files_") and isinstance(value, int) and not isinstance(value, bool):
                self.numbers[name] = self.numbers.get(name, 0) + value
            elif name == "publishable" and isinstance(value, bool):
                self.numbers["studies"] = self.numbers.get("studies", 0) + 1
                self.numbers["publishable"] = self.numbers.get("publishable", 0) + int(value)
            elif name in ("audiences", "cells_released", "cells_hidden") and isinstance(value, int):
                self.numbers[name] = self.numbers.get(name, 0) + value


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number:,} {one if number == 1 else (many or one + 's')}"


def describe(stage: str, tally: StageTally, stopped: bool = False) -> str:
    """The stage's line: what it produced, its checks, its time; whether it failed or was cut short."""
    numbers = tally.numbers
    parts: list[str] = []
    files = {k.removeprefix("files_"): v for k, v in numbers.items() if k.startswith("files_") and v}
    if files:
        parts.append(
            _count(sum(files.values()), "file") + " (" + ", ".join(f"{n:,} {s}" for s, n in sorted(files.items())) + ")"
        )
    if "studies" in numbers:
        parts.append(f"{_count(numbers['studies'], 'study', 'studies')}, {numbers['publishable']:,} publishable")
    elif "audiences" in numbers:
        parts.append(
            f"{_count(numbers['audiences'], 'audience')}, {numbers.get('cells_released', 0):,} cells released, "
            f"{numbers.get('cells_hidden', 0):,} hidden"
        )
    elif tally.assets:
        parts.append(_count(tally.assets, "table"))
        if tally.rows:
            parts.append(_count(tally.rows, "row"))
    if "quarantined" in numbers:
        parts.append(f"{numbers['quarantined']:,} quarantined")
    checks = tally.checks_passed + tally.checks_failed
    if checks:
        parts.append(
            f"{_count(checks, 'check')} " + (f"({tally.checks_failed:,} failed)" if tally.checks_failed else "passed")
        )
    if tally.failed_steps:
        parts.append("failed (the reason follows)")
    elif stopped:
        parts.append("stopped before its end")
    return f"  {stage:<12} {tally.seconds:6.1f} s   {', '.join(parts)}"


class RunProgress:
    """Receives the run's events (through ``progress_logger``) and writes a line per finished stage."""

    def __init__(
        self, stage_of_step: Mapping[str, str], write: Write, live: bool = False, stage_lines: bool = True
    ) -> None:
        self.stage_of_step = dict(stage_of_step)
        self.write = write
        self.live = live and stage_lines
        """On a terminal, the step running now is shown on a line that the next line replaces."""
        self.stage_lines = stage_lines
        """False: the steps' warnings and errors only (``parcours run --quiet``)."""
        self.tallies: dict[str, StageTally] = {}
        for step, stage in self.stage_of_step.items():
            self.tallies.setdefault(stage, StageTally()).steps.add(step)
        self.started: dict[str, float] = {}
        self.written: set[str] = set()
        self.hidden_warnings = 0
        self.last_run = True
        """False while a run is not the last of several reported together (``parcours run`` ingests the new
        partitions in runs of their own first): its end closes no stage."""

    def _stage(self, step: str | None) -> str | None:
        return self.stage_of_step.get(step or "")

    def _say(self, line: str) -> None:
        self.write(("\r\033[K" if self.live else "") + line)

    def on_event(self, event: dg.DagsterEvent) -> None:
        import dagster as dg

        kind = event.event_type_value
        stage = self._stage(event.step_key)
        if stage is None:
            if event.event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE) and self.last_run:
                self.finish()
            return
        tally = self.tallies[stage]
        step = event.step_key or ""
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            if self.live:
                self.write(f"\r\033[K  {stage:<12} {step} …\n".rstrip("\n"))
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            tally.seconds += time.perf_counter() - self.started.pop(step, time.perf_counter())
            tally.failed_steps += kind == "STEP_FAILURE"
            tally.done.add(step)
            self._write_finished()
        elif kind == "ASSET_MATERIALIZATION":
            materialisation = event.step_materialization_data.materialization
            metadata = {k: getattr(v, "value", v) for k, v in materialisation.metadata.items()}
            tally.add_materialisation(materialisation.asset_key.to_user_string(), metadata, step)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if getattr(evaluation, "passed", False):
                tally.checks_passed += 1
            else:
                tally.checks_failed += 1

    def on_message(self, level: int, step: str | None, message: str) -> None:
        """A running step's own warning or error, shown as it comes (the steps never log case values).

        Dagster's own messages about steps it will not run are left out: the stage's line says "not run"."""
        if level >= logging.WARNING and step in self.started:
            self._say(f"  {'warning' if level < logging.ERROR else 'error'}: {message}")

    def _write_finished(self) -> None:
        for stage in sorted(self.tallies, key=lambda s: STAGES.index(s)):
            tally = self.tallies[stage]
            if stage not in self.written and tally.done >= tally.steps:
                self.written.add(stage)
                if self.stage_lines:
                    self._say(describe(stage, tally))

    def finish(self) -> None:
        """At the end of the run: stages cut short by a failure say what they did."""
        if self.live:
            self.write("\r\033[K")
        for stage in sorted(self.tallies, key=lambda s: STAGES.index(s)):
            tally = self.tallies[stage]
            if stage in self.written:
                continue
            self.written.add(stage)
            if self.stage_lines:
                self._say(describe(stage, tally, stopped=True) if tally.done else f"  {stage:<12} not run")


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: RunProgress) -> None:
        super().__init__(logging.DEBUG)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        # Dagster attaches the structured event to each record it hands a run's loggers.
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is not None:
            self.progress.on_event(event)
        else:
            message = str(meta.get("orig_message", record.getMessage()))
            self.progress.on_message(record.levelno, meta.get("step_key"), message)


def progress_logger(progress: RunProgress) -> dg.LoggerDefinition:
    """A Dagster logger that feeds ``progress``; declared per run, in this process."""
    import dagster as dg

    def _build(_: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("parcours.progress", logging.DEBUG)
        logger.addHandler(_ProgressHandler(progress))
        return logger

    return dg.LoggerDefinition(_build, description="One line per stage of the run (parcours run).")


class LibraryLogCounter(logging.Handler):
    """Counts what libraries log at WARNING or above (Great Expectations, scikit-learn...) instead of
    printing it: ``--verbose`` shows it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
