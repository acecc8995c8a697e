"""The hostile-file corpus (``tests/corpus/hostile_files.py``), all files ingested in one batch.

One bad file never stops the batch: every case gets its own report, with the status and the
reasons (and counts) the case states, rows in = accepted + quarantined, a message naming
the file, and nothing refused replaces an earlier good file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.ingest.reasons import FILE_REASONS, Reason
from tests.corpus.adapter import Ingested, ingest_landing, write_landing
from tests.corpus.hostile_files import HOSTILE_FILES, Hostile

GOOD = ("HGOOD/HGOOD_202601_agencies.csv", b"agency_id,model,departement\nHGOOD,remote,69\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ingested]:
    folder = tmp_path_factory.mktemp("hostile")
    landing = folder / "landing"
    write_landing(landing, {case.path: case.build(case.agency) for case in HOSTILE_FILES} | dict([GOOD]))
    return landing, ingest_landing(landing, folder / "warehouse.duckdb")


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(HOSTILE_FILES) >= 60
    assert len({case.id for case in HOSTILE_FILES}) == len(HOSTILE_FILES)
    for case in HOSTILE_FILES:
        assert set(case.expect.reasons) <= {r.value for r in Reason}, case.id


def test_every_file_gets_a_report_and_the_good_file_goes_in(corpus: tuple[Path, Ingested]) -> None:
    _, ingested = corpus
    assert set(ingested.reports) == {case.path for case in HOSTILE_FILES} | {GOOD[0]}
    assert ingested.reports[GOOD[0]].status == "accepted"


@pytest.mark.parametrize("case", HOSTILE_FILES, ids=lambda case: case.id)
def test_each_hostile_file_ends_as_stated(corpus: tuple[Path, Ingested], case: Hostile) -> None:
    report = corpus[1].reports[case.path]
    assert (report.status, report.reasons) == (case.expect.status, case.expect.reasons), report.message
    if case.expect.rows_in is not None:
        assert report.rows_in == case.expect.rows_in
    if case.expect.rows_accepted is not None:
        assert report.rows_accepted == case.expect.rows_accepted
    assert report.message.startswith(case.path)
    assert "Traceback" not in report.message
    file_level = [code for code in report.reasons if Reason(code) in FILE_REASONS]
    assert len(file_level) <= 1  # one file reason at most, and then nothing accepted from that table


def test_the_ledger_records_every_file_once(corpus: tuple[Path, Ingested]) -> None:
    ledger = corpus[1].table("raw_landing_files")
    assert set(ledger["relative_path"]) == {case.path for case in HOSTILE_FILES} | {GOOD[0]}


def test_the_command_line_reports_the_same_files_one_json_line_each(
    corpus: tuple[Path, Ingested], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing, ingested = corpus
    code = main(["ingest", str(landing), "--json", "--warehouse", str(tmp_path / "w.duckdb")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1  # some rows or files refused
    printed = {r["file"]: r for r in map(json.loads, lines)}
    assert len(lines) == len(printed) == len(ingested.reports)
    for path, report in ingested.reports.items():
        assert (printed[path]["status"], printed[path]["reasons"]) == (report.status, report.reasons)
