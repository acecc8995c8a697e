"""A large federation written block by block, so that its size is not bounded by memory.

The generator (``pipelines.synthetic``) simulates a whole federation in memory: 7.6 GB at
1,000,000 persons, so 10,000,000 persons would not fit this 24 GiB machine. For the benchmark's
largest points, ``write_in_blocks`` simulates independent federations of ``block_persons`` persons
one after the other (each with its own seed and its own agencies), gives each block's agencies,
identifiers and linkage pseudonyms their own numbers, and writes them side by side under one
landing folder; only one block is in memory at a time. The result is one federation of
``blocks x agencies`` agencies whose persons never collide across blocks. Ground truth is per block
and not kept: the benchmark times the pipeline, it does not check the studies' estimates.
"""

from __future__ import annotations

import math
import shutil
import string
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl

from pipelines.synthetic.exports import GROUND_TRUTH_FILE, write_landing
from pipelines.synthetic.federation import Federation, FederationSpec, generate_federation

AGENCY_PREFIX = "AG"
"""Agency pseudonyms are ``AG`` and three digits; every identifier an agency sends starts with its own."""
AGENCY_DIGITS = 3
LINKAGE_PREFIX = "LK"
IDENTIFIER_COLUMNS = (
    "agency_id",
    "care_manager_id",
    "person_id",
    "carer_id",
    "episode_id",
    "event_id",
    "assessment_id",
    "intervention_id",
)
"""Columns holding identifiers that start with the agency's pseudonym (``AG001-P000001``)."""
BLOCK_LETTERS = string.ascii_uppercase
"""A block's linkage pseudonyms get a letter, not digits: a longer run of digits could read as a phone number."""


def agency_number(block: int, agency: int, agencies_per_block: int) -> int:
    """The federation-wide number of a block's agency (both counted from 1 for agencies, 0 for blocks)."""
    return block * agencies_per_block + agency


def renumber_block(federation: Federation, block: int, agencies_per_block: int) -> Federation:
    """The block's tables with its agencies renumbered after the earlier blocks' and its linkage
    pseudonyms marked with the block's letter; everything else is left as generated."""
    if block >= len(BLOCK_LETTERS):
        raise ValueError(f"at most {len(BLOCK_LETTERS)} blocks")
    if agency_number(block, agencies_per_block, agencies_per_block) >= 10**AGENCY_DIGITS:
        raise ValueError(f"at most {10**AGENCY_DIGITS - 1} agencies in all")
    width = len(AGENCY_PREFIX) + AGENCY_DIGITS

    def code(number: int) -> str:
        return f"{AGENCY_PREFIX}{number:0{AGENCY_DIGITS}d}"

    mapping = {code(a): code(agency_number(block, a, agencies_per_block)) for a in range(1, agencies_per_block + 1)}

    def renumbered(column: str) -> pl.Expr:
        head = pl.col(column).str.slice(0, width)
        tail = pl.col(column).str.slice(width)
        return pl.concat_str([head.replace_strict(mapping, default=head), tail]).alias(column)

    tables = {}
    for entity, frame in federation.tables.items():
        columns = [renumbered(c) for c in IDENTIFIER_COLUMNS if c in frame.columns]
        if "linkage_id" in frame.columns:
            columns.append(
                pl.col("linkage_id").str.replace(f"^{LINKAGE_PREFIX}", LINKAGE_PREFIX + BLOCK_LETTERS[block])
            )
        tables[entity] = frame.with_columns(columns) if columns else frame
    export_format = {mapping.get(a, a): f for a, f in federation.export_format.items()}
    return replace(federation, tables=tables, export_format=export_format)


def write_in_blocks(
    out_dir: Path,
    persons: int,
    block_persons: int,
    spec: FederationSpec,
    export_format: str = "csv_utf8",
    progress: Callable[[str], None] | None = None,
) -> int:
    """Simulate and write ``persons`` persons in blocks of at most ``block_persons``; the rows written.

    ``spec`` gives every block's settings (agencies per block, months, scenario); its seed is the first
    block's, and each further block adds one."""
    say = progress or (lambda _message: None)
    blocks = math.ceil(persons / block_persons)
    shutil.rmtree(out_dir / "landing", ignore_errors=True)
    rows = 0
    for block in range(blocks):
        size = min(block_persons, persons - block * block_persons)
        say(f"block {block + 1}/{blocks}: {size:,} persons")
        federation = generate_federation(replace(spec, persons=size, seed=spec.seed + block))
        federation = renumber_block(federation, block, spec.agencies)
        federation.export_format = dict.fromkeys(federation.export_format, export_format)
        write_landing(federation, out_dir)
        rows += sum(federation.ground_truth["rows"].values())
        del federation
    (out_dir / GROUND_TRUTH_FILE).unlink(missing_ok=True)  # the last block's only: not the federation's
    return rows
