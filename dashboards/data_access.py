"""The one way pages read data: short read-only connections to the serving snapshot.

Pages never open the pipeline's working database. Every table leaves this module already
filtered for its audience and under disclosure control; cached functions take the
audience as an argument, because Streamlit's cache is shared by every viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from dashboards.disclosure import suppress_small_cells
from pipelines import warehouse
from pipelines.settings import load_settings

FUNDER = "funder"

# Which counts protect which derived values, per served table.
DISCLOSURE_RULES: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "mart_hospitalisation_rates": (
        ["episodes", "persons", "unplanned_admissions", "planned_admissions"],
        {
            "person_days": ["persons"],
            "person_years": ["persons"],
            "unplanned_rate_per_1000py": ["persons", "unplanned_admissions"],
            "unplanned_rate_ci_low": ["persons", "unplanned_admissions"],
            "unplanned_rate_ci_high": ["persons", "unplanned_admissions"],
        },
    ),
    "mart_federation_summary": (["persons", "episodes", "open_episodes"], {}),
}


class SnapshotMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Snapshot:
    path: Path
    version: float
    """Modification time: a new snapshot is a new cache key."""


def current_snapshot() -> Snapshot:
    path = load_settings().serving_path
    if not path.exists():
        raise SnapshotMissing(
            f"No serving snapshot at {path}. Run `make demo`, or `parcours generate` then `parcours run`."
        )
    return Snapshot(path, path.stat().st_mtime)


@st.cache_data(ttl=300, show_spinner=False, max_entries=64)
def _read_table(path: str, version: float, table: str) -> pl.DataFrame:
    del version  # part of the cache key only
    with warehouse.connect(Path(path), read_only=True) as con:
        return warehouse.query(con, f"select * from {warehouse.quote_identifier(table)}")


def load_table(table: str, audience: str) -> pl.DataFrame:
    """A served table as ``audience`` may see it."""
    if table not in DISCLOSURE_RULES:
        raise KeyError(f"{table} is not a served table")
    snapshot = current_snapshot()
    frame = _read_table(str(snapshot.path), snapshot.version, table)
    counts, derived = DISCLOSURE_RULES[table]
    return suppress_small_cells(frame, counts, derived)


@st.cache_data(ttl=300, show_spinner=False)
def _read_metadata(path: str, version: float) -> dict[str, str]:
    del version
    with warehouse.connect(Path(path), read_only=True) as con:
        rows = con.execute("select key, value from serving_metadata").fetchall()
    return {str(k): str(v) for k, v in rows}


def snapshot_metadata() -> dict[str, str]:
    snapshot = current_snapshot()
    return _read_metadata(str(snapshot.path), snapshot.version)
