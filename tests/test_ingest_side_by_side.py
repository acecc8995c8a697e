"""Files checked side by side (``PARCOURS_INGEST_THREADS``) give the very same warehouse as one at a time."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

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


def _ingested(landing: Path, folder: Path, threads: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
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
        contents = {}
        for name in tables:
            frame = warehouse.query(con, f"select * from {warehouse.quote_identifier(name)}")
            frame = frame.drop([c for c in frame.columns if _varying(name, c)])
            contents[name] = frame.sort(frame.columns, nulls_last=True)
    return {"reports": [r.as_json() for r in reports], "tables": contents, "messages": sorted(messages)}


def test_files_checked_side_by_side_give_the_same_warehouse(
    small_federation_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = _landing(small_federation_dir, tmp_path)
    alone = _ingested(landing, tmp_path / "one", 1, monkeypatch)
    side_by_side = _ingested(landing, tmp_path / "three", 3, monkeypatch)
    assert alone["reports"] == side_by_side["reports"]
    assert alone["messages"] == side_by_side["messages"]
    assert len(alone["messages"]) == len(alone["reports"])  # type: ignore[arg-type]
    statuses = {r["status"] for r in alone["reports"]}  # type: ignore[attr-defined,union-attr]
    assert {"accepted", "partial", "rejected"} <= statuses  # the hostile files made it a real test
    tables_alone, tables_side = alone["tables"], side_by_side["tables"]
    assert tables_alone["raw_quarantine"].height >= 4  # type: ignore[index]
    assert tables_alone.keys() == tables_side.keys()  # type: ignore[attr-defined,union-attr]
    for name, frame in tables_alone.items():  # type: ignore[attr-defined,union-attr]
        assert isinstance(frame, pl.DataFrame)
        assert frame.equals(tables_side[name]), name  # type: ignore[index]


def test_the_threads_variable_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, "two")
    with pytest.raises(ValueError, match="PARCOURS_INGEST_THREADS must be a whole number"):
        service.ingest_threads()
    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, "0")
    assert service.ingest_threads() == 1
