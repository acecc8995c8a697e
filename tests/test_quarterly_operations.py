"""The pieces of the quarterly cycle, one at a time: partition keys and ranges, the sensor's plan, the
schedule's release, release names, the writer lock, the comparison of a rebuild."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.ingest.readers import describe_file
from pipelines.operations.releases import (
    ReleaseError,
    check_name,
    free_name,
    previous_quarter_end,
    quarter_of,
    table_digest,
)
from pipelines.operations.reproduce import compare
from pipelines.partitions import contiguous_ranges, files_by_partition, partition_key, partitions_to_ingest
from pipelines.schedules import quarterly_release, quarterly_run_config
from pipelines.sensors import plan_runs, scan_landing
from pipelines.writer_lock import WriterBusyError, writer_lock


def _landing(tmp_path: Path, files: dict[str, str]) -> Path:
    landing = tmp_path / "landing"
    for relative, text in files.items():
        path = landing / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return landing


def _described(landing: Path) -> list:
    return [describe_file(p, landing, p.parent.name) for p in sorted(landing.rglob("*.csv"))]


def test_partition_keys_are_agency_and_export_period(tmp_path: Path) -> None:
    landing = _landing(
        tmp_path,
        {
            "AG001/AG001_202603_persons.csv": "a\n1\n",
            "AG001/AG001_202606_persons.csv": "a\n2\n",
            "AG002/export persons.csv": "a\n3\n",  # no period in the name
            "Dupont Jean/AG9_202603_persons.csv": "a\n4\n",  # a folder name that cannot be a key
        },
    )
    keys = sorted(partition_key(f) for f in _described(landing))
    assert keys == ["AG001/202603", "AG001/202606", "AG002/other", "_/202603"]
    grouped = files_by_partition(_described(landing))
    assert list(grouped) == sorted(grouped)


def test_only_partitions_with_an_unknown_file_are_ingested(tmp_path: Path) -> None:
    landing = _landing(
        tmp_path, {"AG001/AG001_202603_persons.csv": "a\n1\n", "AG002/AG002_202603_persons.csv": "a\n2\n"}
    )
    files = _described(landing)
    known = {(f.agency_folder, f.sha256) for f in files}
    assert partitions_to_ingest(files, known) == []
    (landing / "AG002/AG002_202603_persons.csv").write_text("a\n2\n3\n", encoding="utf-8")  # corrected
    assert partitions_to_ingest(_described(landing), known) == ["AG002/202603"]


def test_the_sensor_plans_one_run_per_changed_partition_keyed_by_its_files(tmp_path: Path) -> None:
    landing = _landing(
        tmp_path, {"AG001/AG001_202603_persons.csv": "a\n1\n", "AG002/AG002_202603_persons.csv": "a\n2\n"}
    )
    files, cache = scan_landing(landing, {})
    assert set(plan_runs(files, set())) == {"AG001/202603", "AG002/202603"}
    known = {(f.agency_folder, f.sha256) for f in files}
    assert plan_runs(files, known) == {}
    again, _ = scan_landing(landing, cache)  # unchanged files are not hashed again, and give the same hashes
    assert sorted(f.sha256 for f in again) == sorted(f.sha256 for f in files)
    assert sorted(map(partition_key, again)) == sorted(map(partition_key, files)) == ["AG001/202603", "AG002/202603"]
    assert all(len(name) == 32 for name in cache)  # paths kept as digests: a name may hold an identifier
    (landing / "AG001/AG001_202603_persons.csv").write_text("a\n9\n", encoding="utf-8")
    changed, _ = scan_landing(landing, cache)
    first = plan_runs(changed, known)
    assert list(first) == ["AG001/202603"]
    (landing / "AG001/AG001_202603_persons.csv").write_text("a\n10\n", encoding="utf-8")
    second = plan_runs(scan_landing(landing, cache)[0], known)
    assert first["AG001/202603"] != second["AG001/202603"]  # a new change, a new run


def test_contiguous_ranges_cover_exactly_the_wanted_partitions() -> None:
    ordered = ["A/1", "A/2", "B/1", "B/2", "C/1"]
    assert contiguous_ranges(ordered, ["A/1", "A/2", "B/1"]) == [("A/1", "B/1")]
    assert contiguous_ranges(ordered, ["A/2", "C/1"]) == [("A/2", "A/2"), ("C/1", "C/1")]
    assert contiguous_ranges(ordered, []) == []
    with pytest.raises(ValueError, match="unknown"):
        contiguous_ranges(ordered, ["Z/9"])


@pytest.mark.parametrize(
    ("day", "name", "cutoff"),
    [
        (date(2026, 10, 20), "2026-Q3", date(2026, 9, 30)),
        (date(2026, 1, 20), "2025-Q4", date(2025, 12, 31)),
        (date(2026, 4, 20), "2026-Q1", date(2026, 3, 31)),
        (date(2026, 7, 20), "2026-Q2", date(2026, 6, 30)),
    ],
)
def test_the_schedule_publishes_the_quarter_just_ended(day: date, name: str, cutoff: date) -> None:
    found, config = quarterly_run_config(day)
    assert found == name
    assert config["resources"]["parcours"]["config"] == {"release": name, "data_cutoff": cutoff.isoformat()}
    assert previous_quarter_end(day) == cutoff
    assert quarter_of(cutoff) == name


def test_the_schedule_s_run_request_names_its_release() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 10, 20, 6, tzinfo=ZoneInfo("Europe/Paris"))
    )
    request = quarterly_release(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "2026-Q3"
    assert request.tags["parcours/release"] == "2026-Q3"


def test_release_names_are_never_reused(tmp_path: Path) -> None:
    assert free_name(tmp_path, "2026-Q3") == "2026-Q3"
    (tmp_path / "2026-Q3").mkdir()
    assert free_name(tmp_path, "2026-Q3") == "2026-Q3.2"
    (tmp_path / "2026-Q3.2").mkdir()
    assert free_name(tmp_path, "2026-Q3") == "2026-Q3.3"
    for bad in ("../x", "", "a/b", ".hidden"):
        with pytest.raises(ReleaseError):
            check_name(bad)


def test_a_table_s_digest_ignores_row_order_and_run_times_but_not_a_bit() -> None:
    from datetime import datetime

    frame = pl.DataFrame({"a": [1, 2], "x": [0.1, 0.2], "ingested_at": [datetime(2026, 1, 1), datetime(2026, 1, 2)]})
    shuffled = frame.reverse().with_columns(pl.col("ingested_at").dt.offset_by("1d"))
    assert table_digest(frame) == table_digest(shuffled)
    nudged = frame.with_columns(pl.when(pl.col("a") == 1).then(0.1 + 1e-17 + 2**-56).otherwise(pl.col("x")).alias("x"))
    assert table_digest(frame) != table_digest(nudged)


def test_compare_names_every_table_that_differs_or_is_missing() -> None:
    expected = {"f.duckdb": {"t1": "a", "t2": "b"}, "g.duckdb": {"t": "c"}}
    found = {"f.duckdb": {"t1": "a", "t2": "B", "t3": "d"}}
    compared, differing = compare(expected, found)
    assert compared == 4
    assert differing == ["f.duckdb: t2", "f.duckdb: t3", "g.duckdb: t"]


HOLD = """
import sys, time
from pathlib import Path
from pipelines.writer_lock import writer_lock
with writer_lock(Path(sys.argv[1]), "the quarterly release"):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_second_writer_is_refused_with_who_holds_the_lock(tmp_path: Path) -> None:
    database = tmp_path / "parcours.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(database)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WriterBusyError, match="the quarterly release") as refused, writer_lock(database, "mine"):
            pass
        assert "one run writes at a time" in str(refused.value)
    finally:
        holder.kill()
        holder.wait()
    with writer_lock(database, "mine"), writer_lock(database, "a step of mine"):  # free again; re-entrant
        pass


def test_late_exports_are_quarters_due_and_not_received() -> None:
    from pipelines.operations.late import late_exports, quarter_due, quarter_index

    assert quarter_due(quarter_index("202603") or 0) == date(2026, 4, 15)
    assert quarter_due(quarter_index("202612") or 0) == date(2027, 1, 15)
    files = pl.DataFrame(
        {
            "agency_folder": ["AG001", "AG001", "AG002", "AG002", "AG003"],
            "period": ["202603", "202609", "202603", "202606", "202606"],
            "status": ["accepted", "partial", "accepted", "rejected", "accepted"],
        }
    )
    late = late_exports(files, date(2026, 10, 20))
    assert late.rows() == [
        ("AG001", "2026-Q2", date(2026, 7, 15), 97),  # skipped a quarter
        ("AG002", "2026-Q2", date(2026, 7, 15), 97),  # its export was refused whole
        ("AG002", "2026-Q3", date(2026, 10, 15), 5),
        ("AG003", "2026-Q3", date(2026, 10, 15), 5),
    ]
    assert late_exports(files, date(2026, 10, 15)).filter(pl.col("quarter") == "2026-Q3").is_empty()  # not due yet
