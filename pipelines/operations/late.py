"""Which agencies' quarterly exports are late: expected, due, and not received.

Each member agency sends one export a quarter. A quarter is received from an agency when a file of one
of its months (the ``YYYYMM`` export period of the file's name) was accepted, whole or in part; a file
refused whole does not count. The first quarter an agency is expected is the first it ever sent; each
quarter after it is due ``GRACE_DAYS`` after its last day (the quarterly schedule publishes five days
later, ``pipelines.schedules``). A quarter due and not received is late, by the days since it was due.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

GRACE_DAYS = 15
RECEIVED = ("accepted", "partial")
LATE_SCHEMA = {
    "agency_folder": pl.String,
    "quarter": pl.String,
    "due": pl.Date,
    "days_late": pl.Int64,
}


def quarter_index(period: str) -> int | None:
    """Quarters counted from year 0 (``202606`` -> 2026 * 4 + 1), or None when not a ``YYYYMM`` period."""
    if len(period) != 6 or not period.isdigit() or not 1 <= int(period[4:]) <= 12:
        return None
    return int(period[:4]) * 4 + (int(period[4:]) - 1) // 3


def quarter_name(index: int) -> str:
    return f"{index // 4}-Q{index % 4 + 1}"


def quarter_due(index: int) -> date:
    year, quarter = divmod(index + 1, 4)
    first_of_next = date(year, quarter * 3 + 1, 1)
    return first_of_next + timedelta(days=GRACE_DAYS - 1)


def late_exports(files: pl.DataFrame, today: date) -> pl.DataFrame:
    """One row per agency and quarter due by ``today`` with no export received; ``files`` holds the ledger's
    ``agency_folder``, ``period`` and ``status``."""
    rows = []
    for agency, group in files.group_by("agency_folder"):
        received = {
            q
            for period, status in group.select("period", "status").iter_rows()
            if status in RECEIVED and (q := quarter_index(str(period))) is not None
        }
        if not received:
            continue
        index = min(received)
        while quarter_due(index) < today:
            if index not in received:
                due = quarter_due(index)
                rows.append((str(agency[0]), quarter_name(index), due, (today - due).days))
            index += 1
    return pl.DataFrame(rows, schema=LATE_SCHEMA, orient="row").sort("agency_folder", "quarter")
