"""Files checked side by side (``PARCOURS_INGEST_THREADS``) give the very same warehouse as one at a time."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.ingest import service
from pipelines.ingest.pseudonyms import DEMO_KEY
from pipelines.ingest.readers import discover_landing_files

TODAY = date(2026, 7, 1)


def _varying(table: str, column: str) -> bool:
    """Whether a column says when a run wrote (``*_at``, and the raw zone's part names, made unique by the
    time of writing), not what it decided."""
    return column.endswith("_at") or (table == "raw_zone_files" and column == "path")


def _landing(small_federation_dir: Path, target: Path) -> Path:
    """The small federation's files, one of them made hostile in several ways, and a file that cannot be read."""
    landing = target / "landing"
    shutil.copytree(small_federation_dir / "landing", landing)
    events = next(p for p in sorted(landing.glob("*/*_events.csv")) if p.read_bytes().startswith(b"\xef\xbb\xbf"))
    lines = events.read_text(encoding="utf-8-sig").splitlines()
    lines += [lines[1], lines[2].replace(",", ";", 1), "=cmd()," + lines[3].split(",", 1)[1]]
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    agency = events.parent
    (agency / f"{agency.name}_202601_persons.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    (agency / f"{agency.name}_202601_carers.csv").write_text("carer_id,email\nC1,jeanne.martin@example.fr\n")
    return landing


@dataclass
class Ingested:
    reports: list[dict[str, Any]]
    tables: dict[str, pl.DataFrame]
    messages: list[str]


def _ingested(landing: Path, folder: Path, threads: int, monkeypatch: pytest.MonkeyPatch) -> Ingested:
    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, str(threads))
    messages: list[str] = []
    with warehouse.connect(folder / "warehouse.duckdb") as con:
        reports = service.ingest_files(
            con, discover_landing_files(landing), load_contract(), DEMO_KEY, TODAY, progress=messages.append
        )
        tables = [
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_name like 'raw%' order by 1"
            ).fetchall()
        ]
        contents: dict[str, pl.DataFrame] = {}
        for name in tables:
            frame = warehouse.query(con, f"select * from {warehouse.quote_identifier(name)}")
            frame = frame.drop([c for c in frame.columns if _varying(name, c)])
            contents[name] = frame.sort(frame.columns, nulls_last=True)
    return Ingested([r.as_json() for r in reports], contents, messages)


def test_files_checked_side_by_side_give_the_same_warehouse(
    small_federation_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = _landing(small_federation_dir, tmp_path)
    alone = _ingested(landing, tmp_path / "one", 1, monkeypatch)
    side_by_side = _ingested(landing, tmp_path / "three", 3, monkeypatch)
    assert alone.reports == side_by_side.reports
    assert alone.messages == side_by_side.messages  # said in the files' order, as each starts
    assert len(alone.messages) == len(alone.reports)
    assert {"accepted", "partial", "rejected"} <= {r["status"] for r in alone.reports}  # hostile files included
    assert alone.tables["raw_quarantine"].height >= 4
    assert alone.tables.keys() == side_by_side.tables.keys()
    for name, frame in alone.tables.items():
        assert frame.equals(side_by_side.tables[name]), name


def test_the_threads_variable_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, "two")
    with pytest.raises(ValueError, match="PARCOURS_INGEST_THREADS must be a whole number"):
        service.ingest_threads()
    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, "0")
    assert service.ingest_threads() == 1


# --- what a file beside it does -------------------------------------------------------------------------

PERSONS = (
    "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit,gir_at_intake\n"
    "P1,{agency},1940,F,75,true,APA,3\n"
)


def _ingest_persons(folder: Path, agencies: list[str]) -> dict[str, service.FileReport]:
    """One good persons file per agency, ingested; the reports by agency."""
    landing = folder / "landing"
    for agency in agencies:
        path = landing / agency / f"{agency}_202601_persons.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PERSONS.format(agency=agency))
    with warehouse.connect(folder / "warehouse.duckdb") as con:
        reports = service.ingest_files(con, discover_landing_files(landing), load_contract(), DEMO_KEY, TODAY)
    return {r.file.split("/")[0]: r for r in reports}


def test_a_file_reading_while_the_file_beside_it_breaks_the_engine_is_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AGY's CSV is being read when AGX's failure closes the engine they share: AGY's read fails for a reason
    # that is not its own, a processing error (not "unreadable"), and it is checked again alone.
    engines: list[Any] = []
    original_engine, original_validate, original_read = (
        service.scratch_engine,
        service.validate_table,
        warehouse.read_csv_into,
    )
    reading, broken = threading.Event(), threading.Event()

    def recorded(staging: Path) -> Any:
        engines.append(original_engine(staging))
        return engines[-1]

    def breaks_the_engine(source: Any, entity: Any, decimal_comma: bool, agency: str, *args: Any) -> Any:
        if agency == "AGX":
            reading.wait(10)
            engines[-1].close()
            broken.set()
            raise MemoryError("SECRET-VALUE")
        return original_validate(source, entity, decimal_comma, agency, *args)

    def read_after_the_break(con: Any, table: str, path: Path, *args: Any, **kwargs: Any) -> Any:
        if "AGY" in str(path) and len(engines) == 1:
            reading.set()
            broken.wait(10)
        return original_read(con, table, path, *args, **kwargs)

    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, "2")
    monkeypatch.setattr(service, "scratch_engine", recorded)
    monkeypatch.setattr(service, "validate_table", breaks_the_engine)
    monkeypatch.setattr(warehouse, "read_csv_into", read_after_the_break)
    reports = _ingest_persons(tmp_path, ["AGX", "AGY"])
    assert reading.is_set()  # the two files were checked at the same time
    assert broken.is_set()
    assert (reports["AGX"].status, reports["AGX"].reasons) == ("rejected", {"processing_error": 0})
    assert (reports["AGY"].status, reports["AGY"].rows_accepted) == ("accepted", 1)
    assert "SECRET" not in reports["AGX"].message


@pytest.mark.parametrize(("threads", "status"), [(1, "rejected"), (2, "accepted")])
def test_a_file_that_ran_out_of_memory_beside_others_is_checked_again_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int, status: str
) -> None:
    # The engine's memory is shared by the files checked at once: a file that ran short beside others may
    # fit alone. (One at a time, its failure is the run's answer: tried again at the next run.)
    original = service.validate_table
    calls = {"AGY": 0}

    def short_of_memory_once(source: Any, entity: Any, decimal_comma: bool, agency: str, *args: Any) -> Any:
        if agency == "AGY":
            calls["AGY"] += 1
            if calls["AGY"] == 1:
                raise duckdb.OutOfMemoryException("could not allocate")
        return original(source, entity, decimal_comma, agency, *args)

    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, str(threads))
    monkeypatch.setattr(service, "validate_table", short_of_memory_once)
    reports = _ingest_persons(tmp_path, ["AGX", "AGY", "AGZ"])
    assert reports["AGY"].status == status
    assert calls["AGY"] == (2 if threads > 1 else 1)
    assert reports["AGX"].status == reports["AGZ"].status == "accepted"


def test_an_interruption_stops_the_files_running_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker thread never sees Ctrl-C: the run interrupts its statements, and writes nothing.
    original = service.validate_table
    running = threading.Event()

    def interrupted(source: Any, entity: Any, decimal_comma: bool, agency: str, *args: Any) -> Any:
        if agency == "AGX":
            running.wait(10)
            raise KeyboardInterrupt
        if agency == "AGY":
            running.set()
            time.sleep(0.2)  # between two statements when the run is interrupted: DuckDB would forget it
            # About 100 s uninterrupted here (a billion rows in 3.4 s); the test's bound is 30 s.
            source.con.execute("select sum(hash(range)) from range(30000000000)").fetchall()
        return original(source, entity, decimal_comma, agency, *args)

    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, "2")
    monkeypatch.setattr(service, "validate_table", interrupted)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _ingest_persons(tmp_path, ["AGX", "AGY"])
    assert time.monotonic() - started < 30
    with warehouse.connect(tmp_path / "warehouse.duckdb", read_only=True) as con:
        assert (
            not warehouse.table_exists(con, "raw_persons")
            or warehouse.scalar(con, "select count(*) from raw_persons") == 0
        )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_read_that_the_machine_refused_is_tried_again_not_refused_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Memory or disk that ran short (more likely with files side by side) is no verdict on the file: a
    # processing error, read again at the next run, never "unreadable" (which is never read again).
    landing = tmp_path / "landing" / "AGX"
    landing.mkdir(parents=True)
    frame = pl.read_csv(PERSONS.format(agency="AGX").encode())
    if fmt == "csv":
        frame.write_csv(landing / "AGX_202601_persons.csv")

        def refused(*args: Any, **kwargs: Any) -> Any:
            raise duckdb.IOException("could not write to the spill file")

        monkeypatch.setattr(warehouse, "read_csv_into", refused)
    else:
        frame.write_parquet(landing / "AGX_202601_persons.parquet")

        def short(*args: Any, **kwargs: Any) -> Any:
            raise MemoryError

        monkeypatch.setattr(pl, "read_parquet", short)
    with warehouse.connect(tmp_path / "warehouse.duckdb") as con:
        (report,) = service.ingest_files(
            con, discover_landing_files(tmp_path / "landing"), load_contract(), DEMO_KEY, TODAY
        )
    assert (report.status, report.reasons) == ("rejected", {"processing_error": 0})
    assert "tried again" in report.message
