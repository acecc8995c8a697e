"""Referential integrity: which references must point to an accepted row of the same agency.

The rules are data (``REFERENCES``), so that any implementation (these Polars joins today,
set-based queries in the engine later) applies the same ones. A reference is resolved within
the agency that sent it: pseudonyms are re-keyed per agency, and an agency only knows its own
people. A row whose reference resolves to nothing is an orphan: it is quarantined as
``orphan_reference`` but *held* (typed and pseudonymised) and released by the first run in
which its parent is accepted, so files of one agency may arrive in any order, across runs.
An empty optional reference (an episode with no care manager yet) is not an orphan.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

AGENCY = "_agency_folder"


@dataclass(frozen=True)
class Reference:
    entity: str
    column: str
    parent: str
    parent_column: str


REFERENCES: tuple[Reference, ...] = (
    Reference("episodes", "person_id", "persons", "person_id"),
    Reference("episodes", "care_manager_id", "care_managers", "care_manager_id"),
    Reference("events", "person_id", "persons", "person_id"),
    Reference("assessments", "person_id", "persons", "person_id"),
    Reference("assessments", "episode_id", "episodes", "episode_id"),
    Reference("carers", "person_id", "persons", "person_id"),
    Reference("service_plans", "person_id", "persons", "person_id"),
    Reference("interventions", "episode_id", "episodes", "episode_id"),
)


def references_of(entity: str) -> list[Reference]:
    return [r for r in REFERENCES if r.entity == entity]


def parents_first(entities: Iterable[str]) -> list[str]:
    """Entities ordered so that every parent comes before its children (releases cascade in one run)."""
    remaining = list(entities)
    ordered: list[str] = []
    while remaining:
        ready = [
            e for e in remaining if all(r.parent not in remaining or r.parent == e for r in references_of(e))
        ] or remaining[:1]
        ordered += ready
        remaining = [e for e in remaining if e not in ready]
    return ordered


def first_orphan_column(rows: pl.DataFrame, entity: str, parent_keys: dict[tuple[str, str], pl.DataFrame]) -> pl.Series:
    """For each row (with ``_agency_folder`` and the entity's columns): the first reference column
    that points to no parent, or null when every reference resolves.

    ``parent_keys[(parent, parent_column)]``: a frame of ``_agency_folder`` and ``parent_column``
    holding every accepted parent key (stored, and accepted in this run).
    """
    first = pl.Series("orphan", [None] * rows.height, dtype=pl.String)
    for rule in references_of(entity):
        if rule.column not in rows.columns:
            continue
        parents = parent_keys.get((rule.parent, rule.parent_column))
        known = (
            parents.select(pl.col(AGENCY), pl.col(rule.parent_column).alias(rule.column), pl.lit(True).alias("_known"))
            .unique()
            .cast({AGENCY: pl.String, rule.column: pl.String})
            if parents is not None
            else pl.DataFrame(schema={AGENCY: pl.String, rule.column: pl.String, "_known": pl.Boolean})
        )
        resolved = (
            rows.select(pl.col(AGENCY).cast(pl.String), pl.col(rule.column).cast(pl.String))
            .join(known, on=[AGENCY, rule.column], how="left", maintain_order="left")
            .select(pl.col(rule.column).is_null() | pl.col("_known").fill_null(False))
            .to_series()
        )
        first = pl.select(pl.when(~resolved & first.is_null()).then(pl.lit(rule.column)).otherwise(first)).to_series()
    return first.alias("orphan")
