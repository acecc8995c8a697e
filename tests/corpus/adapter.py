"""The one seam between the corpora and ingestion: put files in a landing folder, ingest, read back.

Another ingestion implementation (set-based, in the engine) passes the corpora by keeping
``ingest_landing``'s contract: one report per file (status, rows in, accepted, quarantined,
reasons with counts, a message naming the file) and the warehouse's raw, quarantine and
ledger tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.ingest.config import load_agencies_config
from pipelines.ingest.load import unaccounted_rows
from pipelines.ingest.pseudonyms import DEMO_KEY
from pipelines.ingest.readers import discover_landing_files
from pipelines.ingest.service import FileReport, ingest_files

TODAY = date(2026, 11, 23)


@dataclass
class Ingested:
    reports: dict[str, FileReport]
    warehouse_path: Path

    def quarantine(self) -> pl.DataFrame:
        return self.table("raw_quarantine")

    def table(self, name: str) -> pl.DataFrame:
        with warehouse.connect(self.warehouse_path, read_only=True) as con:
            return warehouse.query(con, f"select * from {warehouse.quote_identifier(name)}")

    def dump(self) -> str:
        """Every table of the warehouse as text: what an identifier must never be found in."""
        with warehouse.connect(self.warehouse_path, read_only=True) as con:
            return "\n".join(
                str(con.execute(f"select * from {warehouse.quote_identifier(t)}").fetchall())
                for t in warehouse.list_tables(con)
            )


def write_landing(landing: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = landing / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def ingest_landing(landing: Path, warehouse_path: Path) -> Ingested:
    """Ingest every file of ``landing`` (one run) and check the accounting invariants on the way."""
    with warehouse.connect(warehouse_path) as con:
        reports = ingest_files(
            con,
            discover_landing_files(landing),
            load_contract(),
            DEMO_KEY,
            TODAY,
            load_agencies_config(landing / "agencies.yaml"),
        )
        assert unaccounted_rows(con, load_contract()).is_empty()
    for report in reports:
        assert report.rows_in == report.rows_accepted + report.rows_quarantined, report
        assert report.file in report.message or report.status == "duplicate", report
    return Ingested({r.file: r for r in reports}, warehouse_path)
