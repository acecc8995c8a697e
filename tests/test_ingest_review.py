"""Defects found by the adversarial review of issue 14, one test per class (see docs/ingestion.md).

Links and special files in the landing folder, identifiers in file, sheet and column names, and
the command line given the same path twice or a configuration file that does not exist.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from pipelines.cli import main
from tests.corpus.adapter import ingest_landing, write_landing

HEADER = "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit"
PHONE, EMAIL = "0698765432", "jeanne.dupont@example.org"


def _persons(agency: str, *ids: str) -> bytes:
    return ("\n".join([HEADER, *(f"{i},{agency},1940,F,75,true,APA" for i in ids)]) + "\n").encode()


def test_links_and_special_files_are_reported_and_never_followed(tmp_path: Path) -> None:
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    write_landing(landing, {"AG2/AG2_202601_persons.csv": _persons("AG2", "P1")})
    write_landing(outside, {"AG4/AG4_202601_persons.csv": _persons("AG4", "P8"), "key": _persons("AG1", "P9")})
    (landing / "AG1").mkdir()
    (landing / "AG1" / "AG1_202601_persons.csv").symlink_to("../AG2/AG2_202601_persons.csv")  # another agency's
    (landing / "AG1" / "AG1_202602_persons.csv").symlink_to(outside / "key")  # a file outside the landing folder
    (landing / "AG1" / "AG1_202603_persons.csv").symlink_to(tmp_path / "nowhere")  # dangling
    os.mkfifo(landing / "AG1" / "AG1_202604_persons.csv")  # would block a reader for ever
    (landing / "AG4").symlink_to(outside / "AG4")  # a linked agency folder: used to be skipped in silence
    ingested = ingest_landing(landing, tmp_path / "w.duckdb")
    refused = {"AG1/AG1_202601_persons.csv", "AG1/AG1_202602_persons.csv", "AG1/AG1_202603_persons.csv",
               "AG1/AG1_202604_persons.csv", "AG4"}  # fmt: skip
    for name in refused:
        report = ingested.reports[name]
        assert (report.status, report.reasons, report.rows_in) == ("rejected", {"not_a_regular_file": 0}, 0)
    # The agency's own file is read (a link to it used to make it a "duplicate", never ingested).
    assert ingested.reports["AG2/AG2_202601_persons.csv"].status == "accepted"
    assert ingested.table("raw_persons")["_agency_folder"].to_list() == ["AG2"]
    # Reported again at the next run, never as "already received".
    again = ingest_landing(landing, tmp_path / "w.duckdb")
    assert {again.reports[name].status for name in refused} == {"rejected"}


def _sheet_named(name: str) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer)
    sheet = book.add_worksheet(name)
    for r, row in enumerate([HEADER.split(","), ["P1", "AGN", "1940", "F", "75", "true", "APA"]]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.close()
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (f"AGN/AGN_202601_DUPONT_{PHONE}_persons.csv", _persons("AGN", "P1"), "identifier_in_name"),
        (f"AGN/AGN_202601_{EMAIL}_persons.csv", _persons("AGN", "P1"), "identifier_in_name"),
        ("AGN/AGN_202601_Mme Martin_persons.csv", _persons("AGN", "P1"), "identifier_in_name"),
        ("AGN/AGN_202601_export.xlsx", _sheet_named(f"Mme Martin {PHONE}"), "identifier_in_name"),
        ("AGN/AGN_202601_persons.csv", (HEADER + f",{EMAIL}\nP1,AGN,1940,F,75,true,APA,x\n").encode(),
         "identifier_column"),
        ("AGN/AGN_202601_persons.csv", (HEADER + f",tel {PHONE}\nP1,AGN,1940,F,75,true,APA,x\n").encode(),
         "identifier_column"),
    ],
    ids=["phone-in-file-name", "email-in-file-name", "titled-name-in-file-name", "sheet-name", "email-as-header",
         "phone-in-header"],
)  # fmt: skip
def test_an_identifier_in_a_name_is_refused_and_never_stored_nor_printed(
    tmp_path: Path, name: str, content: bytes, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_landing(tmp_path / "landing", {name: content})
    ingested = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    (report,) = ingested.reports.values()
    assert (report.status, set(report.reasons)) == ("rejected", {reason})
    assert main(["ingest", str(tmp_path / "landing"), "--json", "--warehouse", str(tmp_path / "cli.duckdb")]) == 1
    printed = capsys.readouterr()
    for trace in (ingested.dump(), report.message, report.file, printed.out, printed.err):
        assert not [value for value in (PHONE, EMAIL, "Martin", "DUPONT") if value in trace]


def test_a_path_named_twice_is_one_file_with_its_real_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found by review: both were reported "duplicate" and the command exited 0 over a refused row.
    write_landing(
        tmp_path / "landing",
        {"AG1/AG1_202601_persons.csv": _persons("AG1", "P1", "P2") + b"P3,AG1,19x1,F,75,true,APA\n"},
    )
    path = str(tmp_path / "landing" / "AG1" / "AG1_202601_persons.csv")
    code = main(["ingest", path, path, "--json", "--warehouse", str(tmp_path / "w.duckdb")])
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [(r["status"], r["reasons"]) for r in reports] == [("partial", {"invalid_type": 1})]


def test_two_files_with_the_same_relative_path_get_a_report_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_landing(tmp_path / "a", {"AG1/AG1_202601_persons.csv": _persons("AG1", "P1")})
    write_landing(tmp_path / "b", {"AG1/AG1_202602_persons.csv": _persons("AG1", "P2", "P3")})
    (tmp_path / "b" / "AG1" / "AG1_202602_persons.csv").rename(tmp_path / "b" / "AG1" / "AG1_202601_persons.csv")
    paths = [str(tmp_path / f / "AG1" / "AG1_202601_persons.csv") for f in ("a", "b")]
    assert main(["ingest", *paths, "--json", "--warehouse", str(tmp_path / "w.duckdb")]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # One report each (they shared one entry before); the later path wins the period, as documented.
    assert sorted((r["status"], r["sha256"]) for r in reports) == sorted(
        [("accepted", reports[1]["sha256"]), ("superseded", reports[0]["sha256"])]
    )


def test_a_configuration_file_that_does_not_exist_stops_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_landing(tmp_path / "landing", {"AG1/AG1_202601_persons.csv": _persons("AG1", "P1")})
    config = str(tmp_path / "agencies.yml")  # mistyped: agencies.yaml
    code = main(["ingest", str(tmp_path / "landing"), "--config", config, "--warehouse", str(tmp_path / "w.duckdb")])
    assert code == 2
    assert "no such configuration file" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()  # nothing was ingested


def test_headers_are_read_as_the_contract_spells_them(tmp_path: Path) -> None:
    # Found by review: "Département" (French spelling) refused the whole file as a missing column.
    header = "\ufeffPerson-ID;Agency ID;birth year;SEX;Département;lives\u00a0alone;Benefit;_source_row"
    write_landing(
        tmp_path / "landing", {"AG1/AG1_202601_persons.csv": f"{header}\nP1;AG1;1940;F;75;oui;APA;99\n".encode()}
    )
    ingested = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    (report,) = ingested.reports.values()
    assert report.status == "accepted", report.message
    assert ingested.table("raw_persons")["_source_row"].to_list() == [2]  # a header never passes for lineage
    write_landing(tmp_path / "again", {"AG1/AG1_202601_persons.csv": f"{header};E-mail\n".encode()})
    (refused,) = ingest_landing(tmp_path / "again", tmp_path / "w2.duckdb").reports.values()
    assert refused.reasons == {"identifier_column": 0}


# --- defects left by the review, fixed with issue 15 ---------------------------------------------------

EVENTS = "event_id,person_id,event_type,event_date\n"


def test_a_file_moved_to_the_right_agency_folder_is_ingested_there(tmp_path: Path) -> None:
    # Found by review: a file was known by its content hash alone, across agencies: first put in the wrong
    # agency's folder (refused there, agency_mismatch), then moved to the right one, it was a "duplicate",
    # never ingested. A received file is its agency folder and its content.
    content = _persons("AGB", "P1", "P2")
    write_landing(tmp_path / "landing", {"AGA/AGB_202601_persons.csv": content})
    first = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    assert first.reports["AGA/AGB_202601_persons.csv"].reasons == {"agency_mismatch": 2}
    (tmp_path / "landing" / "AGA" / "AGB_202601_persons.csv").unlink()
    write_landing(tmp_path / "landing", {"AGB/AGB_202601_persons.csv": content})
    moved = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    assert moved.reports["AGB/AGB_202601_persons.csv"].status == "accepted"
    assert moved.table("raw_persons")["_agency_folder"].to_list() == ["AGB", "AGB"]
    write_landing(tmp_path / "landing", {"AGA/AGB_202601_persons.csv": content})  # dropped again where it was
    again = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    assert again.reports["AGA/AGB_202601_persons.csv"].status == "duplicate"


def test_the_same_bytes_from_two_agencies_are_two_files_replaced_apart(tmp_path: Path) -> None:
    # Every join and delete by a file's hash is by agency and hash: replacing one agency's period must not
    # take the other agency's rows, quarantine or ledger with it.
    events = (EVENTS + "V1,P1,fall,2025-01-02\nV1,P1,fall,2025-01-02\n").encode()  # one duplicate row each
    write_landing(
        tmp_path / "landing",
        {
            "AGA/AGA_202512_persons.csv": _persons("AGA", "P1"),
            "AGB/AGB_202512_persons.csv": _persons("AGB", "P1"),
            "AGA/X_202601_events.csv": events,
            "AGB/X_202601_events.csv": events,
        },
    )
    first = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    assert {first.reports[f"{a}/X_202601_events.csv"].reasons["duplicate_row"] for a in ("AGA", "AGB")} == {1}
    write_landing(tmp_path / "landing", {"AGA/X_202601_events.csv": (EVENTS + "V2,P1,fall,2025-01-03\n").encode()})
    resent = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    events_stored = resent.table("raw_events")
    assert sorted(events_stored["_agency_folder"].to_list()) == ["AGA", "AGB"]
    assert resent.quarantine().filter(pl.col("entity") == "events")["_agency_folder"].to_list() == ["AGB"]
    ledger = resent.table("raw_landing_files").filter(pl.col("entity") == "events")
    assert sorted(ledger.select("agency_folder", "status").rows()) == [
        ("AGA", "accepted"),
        ("AGA", "superseded"),
        ("AGB", "partial"),
    ]


def test_every_identifier_an_agency_chooses_is_re_keyed(tmp_path: Path) -> None:
    # Found by review: event_id, intervention_id and assessment_id were stored as the agency wrote them
    # (a name typed in one, DUPONT-JEAN, reached the warehouse).
    write_landing(
        tmp_path / "landing",
        {
            "AGN/AGN_202512_persons.csv": _persons("AGN", "P1"),
            "AGN/AGN_202512_episodes.csv": (
                b"episode_id,person_id,agency_id,cohort,referral_date,start_date,referral_source,payer,"
                b"entry_situation\nE1,P1,AGN,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n"
            ),
            "AGN/AGN_202601_events.csv": (EVENTS + "DUPONT-JEAN,P1,fall,2025-01-02\n").encode(),
            "AGN/AGN_202601_interventions.csv": (
                b"intervention_id,episode_id,intervention_date,intervention_type\nMARTIN-PAUL,E1,2025-03-15,mediation\n"
            ),
            "AGN/AGN_202601_assessments.csv": (
                b"assessment_id,person_id,assessment_date\nDURAND-MARIE,P1,2025-02-01\n"
            ),
        },
    )
    ingested = ingest_landing(tmp_path / "landing", tmp_path / "w.duckdb")
    assert {r.status for r in ingested.reports.values()} == {"accepted"}
    dump = ingested.dump()
    for typed in ("DUPONT", "JEAN", "MARTIN", "PAUL", "DURAND", "MARIE"):
        assert typed not in dump
    for table, column in (("raw_events", "event_id"), ("raw_interventions", "intervention_id"),
                          ("raw_assessments", "assessment_id")):  # fmt: skip
        assert [len(v) for v in ingested.table(table)[column].to_list()] == [32]
