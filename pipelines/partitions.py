"""Dagster partitions that match the raw zone: one per agency and export period (``AG001/202606``).

A partition holds an agency's files for one export period, the unit the raw zone replaces when a period
is re-sent (``docs/ingestion.md``). Its key is built from the landing file alone (the agency folder and
the ``YYYYMM`` token of the name), so the sensor, ``parcours run`` and ingestion agree on it without
reading the file. Partitions are dynamic: they are added, in sorted order, when their first file
arrives, so that one quarter's new partitions are next to each other and one run can take them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import dagster as dg

from pipelines.ingest.readers import LandingFile

LANDING_PARTITIONS = dg.DynamicPartitionsDefinition(name="landing")
PERIOD = re.compile(r"^\d{6}$")
AGENCY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
NO_PERIOD = "other"
"""The period part of the key of files whose name carries no ``YYYYMM`` export period."""
NO_AGENCY = "_"
"""The agency part of the key of files outside any agency folder, or in one whose name cannot be a key."""


def partition_key(file: LandingFile) -> str:
    """The partition a landing file belongs to; any name that is not a plain agency id or ``YYYYMM``
    period is folded into ``_`` or ``other`` (a key never carries a file's own name)."""
    agency = file.agency_folder if AGENCY.match(file.agency_folder) else NO_AGENCY
    period = file.period if PERIOD.match(file.period) else NO_PERIOD
    return f"{agency}/{period}"


def split_key(key: str) -> tuple[str, str]:
    agency, _, period = key.partition("/")
    return agency, period


def files_by_partition(files: Iterable[LandingFile]) -> dict[str, list[LandingFile]]:
    grouped: dict[str, list[LandingFile]] = {}
    for file in files:
        grouped.setdefault(partition_key(file), []).append(file)
    return {key: sorted(grouped[key], key=lambda f: f.relative_path) for key in sorted(grouped)}


def partitions_to_ingest(files: Iterable[LandingFile], known: set[tuple[str, str]]) -> list[str]:
    """Partitions with a file the ledger does not know (new, or changed: a changed file has a new hash).
    ``known`` holds the ledger's (agency folder, SHA-256) pairs. Files already processed start nothing."""
    return sorted({partition_key(f) for f in files if (f.agency_folder, f.sha256) not in known})


def contiguous_ranges(ordered: Sequence[str], wanted: Iterable[str]) -> list[tuple[str, str]]:
    """``wanted`` as the fewest runs of neighbours in ``ordered`` (the partitions' order), each (first, last):
    one Dagster run takes a range of partitions, not a set."""
    chosen = set(wanted)
    missing = chosen - set(ordered)
    if missing:
        raise ValueError(f"unknown partitions: {sorted(missing)}")
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    previous: str | None = None
    for key in ordered:
        if key in chosen:
            start = start or key
            previous = key
        elif start is not None and previous is not None:
            ranges.append((start, previous))
            start = None
    if start is not None and previous is not None:
        ranges.append((start, previous))
    return ranges


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags by which a run targets a range of partitions (what Dagster's single-run backfills set)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def add_partitions(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Add the keys the instance does not know yet, in sorted order; return those added."""
    existing = set(instance.get_dynamic_partitions(LANDING_PARTITIONS.name or "landing"))
    new = sorted(set(keys) - existing)
    if new:
        instance.add_dynamic_partitions(LANDING_PARTITIONS.name or "landing", new)
    return new
