"""Ingestion peers over the same landing files: the floor (bare DuckDB ``read_csv``) and a pandas
script doing the contract's row checks, as an analyst would write it in a notebook.

The pandas script reads each CSV as text, checks every field of the data contract (missing
required values, types, codes, ranges, lengths, formula-like text, control characters,
e-mails, phone numbers and NIR-shaped numbers in pseudonym and free-text fields, future
dates, date order, duplicate keys), keeps the first failing reason per row, and re-keys the
pseudonyms with the same HMAC. It returns rows accepted and quarantined per file, so that
its counts can be compared with the pipeline's ledger (``raw_landing_files``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date
from pathlib import Path

import duckdb

from pipelines.contract import Contract, allowed_values
from pipelines.ingest.privacy import EMAIL, NIR_CANDIDATE, PHONE
from pipelines.ingest.pseudonyms import PSEUDONYM_LENGTH


def landing_csvs(landing: Path) -> list[Path]:
    return sorted(landing.glob("*/*.csv"))


def entity_of(path: Path, contract: Contract) -> str:
    """``AG001_202606_service_plans.csv`` holds ``service_plans``."""
    stem = path.stem.split("_", 2)[-1]
    if stem not in contract.entities:
        raise ValueError(f"{path.name}: no entity of the contract in its name")
    return stem


def duckdb_read_csv(files: list[Path], database: Path) -> int:
    """The floor: every file into a table of a DuckDB file with ``read_csv``, nothing checked. Rows read."""
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    rows = 0
    try:
        for i, path in enumerate(files):
            con.execute(f"create table file_{i} as select * from read_csv(?)", [str(path)])
            rows += int(con.sql(f"select count(*) from file_{i}").fetchall()[0][0])
    finally:
        con.close()
        database.unlink(missing_ok=True)
    return rows


def pandas_ingest(files: list[Path], contract: Contract, key: bytes, today: date) -> dict[str, tuple[int, int]]:
    """(rows accepted, rows quarantined) per file name."""
    import pandas as pd

    results: dict[str, tuple[int, int]] = {}
    control = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
    identifier = f"(?:{EMAIL})|(?:{PHONE})|(?:{NIR_CANDIDATE})"
    for path in files:
        entity = contract.entity(entity_of(path, contract))
        agency = path.parent.name
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        reason = pd.Series(None, index=frame.index, dtype=object)

        def fail(mask: pd.Series, code: str, reason: pd.Series = reason) -> None:
            reason[mask & reason.isna()] = code

        typed: dict[str, pd.Series] = {}
        for field in entity.fields:
            if field.name not in frame.columns:
                continue
            text = frame[field.name].str.strip()
            empty = text.eq("")
            fail(text.str.contains(control), "control_characters")
            fail(text.str.len() > field.max_length, "field_too_long")
            if field.required:
                fail(empty, "missing_value")
            if field.type == "string":
                fail(text.str.match(r"[=+\-@]"), "formula_like")
                if field.pseudonym or field.free_text:
                    fail(text.str.contains(identifier), "identifier_in_value")
                allowed = allowed_values(field)
                if allowed is not None:
                    values = text.str.split(field.list_separator) if field.list_separator else None
                    if values is not None:
                        bad = values.map(lambda items, ok=set(allowed): any(i and i not in ok for i in items))
                    else:
                        bad = ~text.isin(list(allowed))
                    fail(~empty & bad, "invalid_code")
            elif field.type in ("integer", "decimal"):
                number = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
                fail(~empty & number.isna(), "invalid_type")
                if field.type == "integer":
                    fail(~empty & number.notna() & (number % 1 != 0), "invalid_type")
                out = (number < field.min if field.min is not None else False) | (
                    number > field.max if field.max is not None else False
                )
                fail(~empty & out, "out_of_range")
            elif field.type in ("date", "month"):
                day = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
                fail(~empty & day.isna(), "invalid_type")
                if field.type == "month":
                    fail(~empty & day.notna() & (day.dt.day != 1), "invalid_type")
                fail(day > pd.Timestamp(today), "future_date")
                fail(day < pd.Timestamp(1900, 1, 1), "out_of_range")
                typed[field.name] = day
            elif field.type == "boolean":
                fail(~empty & ~text.str.lower().isin(["true", "false", "oui", "non", "1", "0"]), "invalid_type")
        for earlier, later in entity.date_order:
            if earlier in typed and later in typed:
                fail(typed[later] < typed[earlier], "inconsistent_dates")
        key_columns = [c for c in entity.primary_key if c in frame.columns]
        if key_columns and len(frame):
            fail(frame.duplicated(key_columns, keep="first"), "duplicate_key")
        accepted = frame[reason.isna()].copy()
        keyed = hmac.new(key, digestmod=hashlib.sha256)
        for field in entity.fields:
            if field.pseudonym and field.name in accepted.columns:
                mapping = {}
                for value in accepted[field.name].unique():
                    mac = keyed.copy()
                    mac.update(f"{agency}\x1f{value}".encode())
                    mapping[value] = mac.hexdigest()[:PSEUDONYM_LENGTH]
                accepted[field.name] = accepted[field.name].map(mapping)
        results[path.name] = (len(accepted), int(reason.notna().sum()))
    return results
