"""Time the studies stage study by study, in wall and CPU seconds, on a warehouse of a generated federation.

``python -m pipelines.impact.timing --persons 100000 --warehouse data/generated/studies-100k.duckdb``
generates the federation and loads it as the validation does (``validation.load_federation``: raw
tables, then the SQL models the studies read; file ingestion skipped) when the warehouse file does not
exist yet, then runs every study of ``data/studies/`` as the pipeline does (``run_study``, curves and
subgroups included) and prints each one's wall and CPU seconds. CPU seconds (``time.process_time``,
every thread of the process) are the figure to compare on a shared machine, where wall time depends on
the others' load. ``--out PREFIX`` also writes the studies' rows and curves (``PREFIX.parquet``,
``PREFIX.curves.parquet``) to compare two versions of the code figure by figure. Figures and their
reading: ``docs/benchmarks-notes.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from pipelines import warehouse
from pipelines.impact.study import curve_rows, load_studies, result_rows, run_study


def build_warehouse(path: Path, persons: int, agencies: int, seed: int) -> None:
    from pipelines.impact.validation import load_federation
    from pipelines.synthetic.federation import FederationSpec, generate_federation

    federation = generate_federation(FederationSpec(agencies=agencies, persons=persons, seed=seed))
    with warehouse.connect(path) as con:
        load_federation(con, federation.tables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, required=True, help="DuckDB file (built first if missing)")
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--agencies", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--studies", nargs="*", help="study names (default: every study)")
    parser.add_argument("--out", help="prefix of the Parquet files of the studies' rows and curves")
    args = parser.parse_args(argv)
    if not args.warehouse.exists():
        started = time.perf_counter()
        build_warehouse(args.warehouse, args.persons, args.agencies, args.seed)
        print(f"warehouse built in {time.perf_counter() - started:.1f} s", flush=True)
    rows, curves = [], []
    total_wall = total_cpu = 0.0
    with warehouse.connect(args.warehouse) as con:
        for spec in load_studies():
            if args.studies and spec.name not in args.studies:
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            result = run_study(con, spec)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            total_wall, total_cpu = total_wall + wall, total_cpu + cpu
            print(f"{spec.name}: {wall:.2f} s wall, {cpu:.2f} s CPU, {result.verdict.kind}", flush=True)
            rows.append(result_rows(result))
            curves.append(curve_rows(result))
    print(f"studies: {total_wall:.2f} s wall, {total_cpu:.2f} s CPU")
    if args.out:
        pl.concat(rows, how="diagonal_relaxed").write_parquet(f"{args.out}.parquet")
        pl.concat(curves, how="diagonal_relaxed").write_parquet(f"{args.out}.curves.parquet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
