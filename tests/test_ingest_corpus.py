"""The malformed-input corpus: what agencies' tools really produce, one test per class.

For every case: a clear status and reason, a message naming the file, zero rows unaccounted
for (rows in = accepted + quarantined), and another agency's good file still ingested.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.ingest import service
from pipelines.ingest.config import load_agencies_config
from pipelines.ingest.load import unaccounted_rows
from pipelines.ingest.pseudonyms import DEMO_KEY
from pipelines.ingest.readers import discover_landing_files
from pipelines.ingest.service import ORPHAN_CHECK_ROWS_PER_GB, FileReport, agency_batches, ingest_files

TODAY = date(2026, 11, 23)
PERSONS_HEADER = "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit,gir_at_intake"
GOOD_PERSON = "P1,AGX,1940,F,75,true,APA,3"
EVENTS_HEADER = "event_id,person_id,event_type,event_date,end_date,planned"
PLANS_HEADER = "person_id,month,funder,hours_granted,hours_delivered"
NOTES_HEADER = "intervention_id,episode_id,intervention_date,intervention_type,note"
GOOD_FILE = ("AGOK/AGOK_202601_agencies.csv", b"agency_id,model,departement\nAGOK,remote,69\n")
PARENTS = {
    "persons": (
        "AGX/AGX_202512_persons.csv",
        (PERSONS_HEADER + "\nP1,AGX,1940,F,75,true,APA,3\nP2,AGX,1941,M,75,false,APA,4\n").encode(),
    ),
    "episodes": (
        "AGX/AGX_202512_episodes.csv",
        b"episode_id,person_id,agency_id,cohort,referral_date,start_date,referral_source,payer,entry_situation\n"
        b"E1,P1,AGX,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n",
    ),
}
"""The people the row cases point to, sent in another period unless a case sends its own."""


@dataclass
class Outcome:
    reports: dict[str, FileReport]
    warehouse_path: Path

    def report(self, name: str) -> FileReport:
        return next(r for key, r in self.reports.items() if key.endswith(name))

    def quarantine(self) -> pl.DataFrame:
        with warehouse.connect(self.warehouse_path, read_only=True) as con:
            return warehouse.query(con, "select * from raw_quarantine order by _source_file, _source_row")

    def table(self, name: str) -> pl.DataFrame:
        with warehouse.connect(self.warehouse_path, read_only=True) as con:
            return warehouse.query(con, f"select * from {name}")


Ingest = Callable[..., Outcome]


@pytest.fixture
def ingest(tmp_path: Path) -> Ingest:
    landing = tmp_path / "landing"
    db = tmp_path / "warehouse.duckdb"

    def run(files: dict[str, bytes], config: str | None = None, parents: bool = True) -> Outcome:
        sent = {name.rsplit("_", 1)[-1].split(".")[0] for name in files}
        wanted = parents and "persons" not in sent and not landing.exists()
        extra = dict(v for k, v in PARENTS.items() if wanted and k not in sent)
        for name, content in {**dict([GOOD_FILE]), **extra, **files}.items():
            path = landing / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if config is not None:
            (landing / "agencies.yaml").write_text(config)
        found = discover_landing_files(landing)
        with warehouse.connect(db) as con:
            reports = ingest_files(
                con, found, load_contract(), DEMO_KEY, TODAY, load_agencies_config(landing / "agencies.yaml")
            )
            assert unaccounted_rows(con, load_contract()).is_empty()
        outcome = Outcome({r.file: r for r in reports}, db)
        for report in reports:
            assert report.rows_in == report.rows_accepted + report.rows_quarantined, report
            assert report.file in report.message or report.status == "duplicate", report
        good = outcome.report("AGOK_202601_agencies.csv")
        assert good.status in ("accepted", "duplicate")
        return outcome

    return run


def persons(*rows: str, header: str = PERSONS_HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def single(outcome: Outcome, name: str) -> FileReport:
    return outcome.report(name)


# --- whole files --------------------------------------------------------------------------------


def test_empty_file(ingest: Ingest) -> None:
    report = single(ingest({"AGX/AGX_202601_persons.csv": b""}), "persons.csv")
    assert (report.status, report.rows_in, report.reasons) == ("rejected", 0, {"empty_file": 0})


def test_blank_lines_only(ingest: Ingest) -> None:
    report = single(ingest({"AGX/AGX_202601_persons.csv": b"\n\n\r\n"}), "persons.csv")
    assert report.reasons == {"empty_file": 0}


def test_header_only(ingest: Ingest) -> None:
    report = single(ingest({"AGX/AGX_202601_persons.csv": persons()}), "persons.csv")
    assert (report.status, report.rows_in, report.rows_accepted, report.reasons) == ("accepted", 0, 0, {})


def test_bom_is_ignored(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": b"\xef\xbb\xbf" + persons(GOOD_PERSON)})
    assert single(outcome, "persons.csv").status == "accepted"
    assert outcome.table("raw_persons")["birth_year"].to_list() == [1940]


def test_file_over_the_size_cap(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCOURS_MAX_FILE_MB", "0.0001")
    report = single(ingest({"AGX/AGX_202601_persons.csv": persons(*[GOOD_PERSON] * 20)}), "persons.csv")
    assert report.reasons == {"file_too_large": 0}
    assert "cap" in report.message


def test_unknown_entity_in_the_file_name(ingest: Ingest) -> None:
    report = single(ingest({"AGX/AGX_202601_clients.csv": persons(GOOD_PERSON)}), "clients.csv")
    assert (report.status, report.reasons) == ("rejected", {"unknown_entity": 1})
    assert "persons" in report.message


def test_repeated_column_name(ingest: Ingest) -> None:
    report = single(
        ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON, header=PERSONS_HEADER + ",sex")}), "persons.csv"
    )
    assert report.reasons == {"malformed_header": 0}


def test_missing_required_column(ingest: Ingest) -> None:
    content = persons("P1,AGX,F,75,true,APA,3", header=PERSONS_HEADER.replace("birth_year,", ""))
    outcome = ingest({"AGX/AGX_202601_persons.csv": content})
    report = single(outcome, "persons.csv")
    assert (report.status, report.reasons) == ("rejected", {"missing_required_column": 1})
    assert "birth_year" in report.message
    assert outcome.quarantine()["raw_line"].to_list() == ["P1,AGX,F,75,true,APA,3"]


def test_unknown_columns_are_not_stored(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON + ",blue", header=PERSONS_HEADER + ",colour")})
    report = single(outcome, "persons.csv")
    assert report.status == "accepted"
    assert "colour" in report.message
    assert "colour" not in outcome.table("raw_persons").columns


def test_wrong_delimiter_in_the_agency_config(ingest: Ingest) -> None:
    content = persons(GOOD_PERSON.replace(",", ";"), header=PERSONS_HEADER.replace(",", ";"))
    report = single(
        ingest({"AGX/AGX_202601_persons.csv": content}, config="agencies:\n  AGX: {delimiter: ','}\n"), "persons.csv"
    )
    assert report.reasons == {"missing_required_column": 1}


def test_config_override_fixes_what_detection_gets_wrong(ingest: Ingest) -> None:
    # A file with both ';' and ',' in its header: detection would pick ','.
    header = "person_id;agency_id;birth_year;sex;departement;lives_alone;benefit;main_conditions"
    content = (header + "\nP1;AGX;1940;F;75;true;APA;dementia\n").encode()
    report = single(
        ingest({"AGX/AGX_202601_persons.csv": content}, config="agencies:\n  AGX: {delimiter: ';'}\n"), "persons.csv"
    )
    assert report.status == "accepted"


def test_corrupt_xlsx(ingest: Ingest) -> None:
    report = single(ingest({"AGX/AGX_202601_export.xlsx": b"PK\x03\x04 not really a workbook"}), "export.xlsx")
    assert report.reasons == {"unreadable_file": 0}


def _zip(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_xlsx_zip_bomb(ingest: Ingest) -> None:
    bomb = _zip({"[Content_Types].xml": b"<Types/>", "xl/worksheets/sheet1.xml": b"0" * 50_000_000})
    report = single(ingest({"AGX/AGX_202601_export.xlsx": bomb}), "export.xlsx")
    assert report.reasons == {"unsafe_archive": 0}
    assert "zip bomb" in report.message


def test_xlsx_xml_bomb(ingest: Ingest) -> None:
    laughs = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><x>&lol2;</x>'
    report = single(ingest({"AGX/AGX_202601_export.xlsx": _zip({"xl/workbook.xml": laughs})}), "export.xlsx")
    assert report.reasons == {"unsafe_archive": 0}


def test_corrupt_parquet(ingest: Ingest) -> None:
    report = single(ingest({"AGX/AGX_202601_persons.parquet": b"PAR1 broken PAR1"}), "persons.parquet")
    assert report.reasons == {"unreadable_file": 0}


def test_identifier_column_quarantines_the_file_without_its_lines(ingest: Ingest) -> None:
    content = persons(GOOD_PERSON + ",Dupont", header=PERSONS_HEADER + ",nom")
    outcome = ingest({"AGX/AGX_202601_persons.csv": content})
    report = single(outcome, "persons.csv")
    assert (report.status, report.reasons) == ("rejected", {"identifier_column": 1})
    assert "Dupont" not in report.message
    assert outcome.quarantine()["raw_line"].to_list() == [None]


# --- rows -----------------------------------------------------------------------------------------


def _reasons(outcome: Outcome) -> list[tuple[int, str, str | None]]:
    return [(r["_source_row"], r["reason"], r["column_name"]) for r in outcome.quarantine().iter_rows(named=True)]


def test_truncated_last_row(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON)[:-1] + b"\nP2,AGX,19"})
    assert _reasons(outcome) == [(3, "malformed_row", "sex")]


def test_truncated_inside_a_quote(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON) + b'"P2,AGX,1941'})
    report = single(outcome, "persons.csv")
    assert (report.rows_accepted, report.reasons) == (1, {"malformed_row": 1})


def test_ragged_rows(ingest: Ingest) -> None:
    outcome = ingest(
        {"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON, "P2,AGX,1941,F,75,true,APA,3,extra", "P3,AGX,1942")}
    )
    assert [r[:2] for r in _reasons(outcome)] == [(3, "malformed_row"), (4, "malformed_row")]


def test_mixed_delimiters(ingest: Ingest) -> None:
    header = PERSONS_HEADER.replace(",", ";")
    content = persons(GOOD_PERSON.replace(",", ";"), GOOD_PERSON.replace("P1", "P2"), header=header)
    outcome = ingest({"AGX/AGX_202601_persons.csv": content})
    assert [r[:2] for r in _reasons(outcome)] == [(3, "malformed_row")]


def test_tab_delimited_with_crlf(ingest: Ingest) -> None:
    content = persons(GOOD_PERSON.replace(",", "\t"), header=PERSONS_HEADER.replace(",", "\t")).replace(b"\n", b"\r\n")
    outcome = ingest({"AGX/AGX_202601_persons.tsv": content})
    assert single(outcome, "persons.tsv").status == "accepted"
    assert outcome.table("raw_persons")["_source_row"].to_list() == [2]


def test_nul_byte_in_a_field(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON, "P2\x00,AGX,1941,F,75,true,APA,3")})
    assert _reasons(outcome) == [(3, "control_characters", "person_id")]


def test_invalid_bytes_for_the_encoding(ingest: Ingest) -> None:
    # A UTF-8 file (accented words) with one stray byte: that row only is quarantined.
    header = PERSONS_HEADER + ",comment"
    rows = [f"P{i},AGX,194{i},F,75,true,APA,3,été" for i in range(1, 5)]
    content = persons(*rows, header=header).replace(b"P2,", b"P2\xff,")
    outcome = ingest({"AGX/AGX_202601_persons.csv": content})
    report = single(outcome, "persons.csv")
    assert (report.rows_accepted, report.reasons) == (3, {"invalid_encoding": 1})
    assert _reasons(outcome) == [(3, "invalid_encoding", "person_id")]


def test_windows_1252_characters_are_decoded(ingest: Ingest) -> None:
    note = "Aide à la toilette, cœur fragile, 20 € par mois, l’aidante épuisée"
    content = (NOTES_HEADER + f"\nI1;E1;15/03/2025;mediation;{note}\n").replace(",", ";", 4).encode("cp1252")
    outcome = ingest({"AGX/AGX_202601_interventions.csv": content})
    assert single(outcome, "interventions.csv").status == "accepted"
    assert outcome.table("raw_interventions")["note"].to_list() == [note]


def test_bytes_undefined_in_windows_1252_cost_their_row_only(ingest: Ingest) -> None:
    rows = "\nI1,E1,2025-03-15,mediation,caf\xe9 \x81\nI2,E1,2025-03-16,mediation,cœur 20 €\n"
    content = (NOTES_HEADER + rows.replace("\x81", "\udc81")).encode("cp1252", "surrogateescape")  # byte 0x81
    outcome = ingest({"AGX/AGX_202601_interventions.csv": content})
    assert outcome.table("raw_interventions")["note"].to_list() == ["cœur 20 €"]
    assert [r[:2] for r in _reasons(outcome)] == [(2, "invalid_encoding")]


def test_latin1_is_read_when_the_agency_says_so(ingest: Ingest) -> None:
    content = (NOTES_HEADER + "\nI1,E1,2025-03-15,mediation,caf\xe9 \xe0 10h\n").encode("latin-1")
    outcome = ingest({"AGX/AGX_202601_interventions.csv": content}, config="agencies:\n  AGX: {encoding: latin-1}\n")
    assert outcome.table("raw_interventions")["note"].to_list() == ["caf\xe9 \xe0 10h"]


def test_decimal_commas_and_non_breaking_thousands(ingest: Ingest) -> None:
    content = PLANS_HEADER.replace(",", ";") + "\nP1;01/03/2025;APA;40,5;12,25\nP1;01/04/2025;APA;1\u00a0000;12\n"
    outcome = ingest({"AGX/AGX_202601_service_plans.csv": content.encode()})
    assert outcome.table("raw_service_plans")["hours_granted"].to_list() == [40.5]
    assert _reasons(outcome) == [(3, "out_of_range", "hours_granted")]  # 1 000 read, then refused as > 744


def test_excel_serial_dates_in_text(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_events.csv": (EVENTS_HEADER + "\nV1,P1,fall,45658,,\n").encode()})
    assert outcome.table("raw_events")["event_date"].to_list() == [date(2025, 1, 1)]


def test_ambiguous_and_american_dates(ingest: Ingest) -> None:
    content = EVENTS_HEADER + "\nV1,P1,fall,01/02/25,,\nV2,P1,fall,12/31/2025,,\nV3,P1,fall,2025-13-01,,\n"
    outcome = ingest({"AGX/AGX_202601_events.csv": content.encode()})
    assert [r[1] for r in _reasons(outcome)] == ["invalid_type"] * 3


def test_future_and_ancient_dates(ingest: Ingest) -> None:
    content = EVENTS_HEADER + "\nV1,P1,fall,2027-01-01,,\nV2,P1,fall,1850-06-01,,\n"
    outcome = ingest({"AGX/AGX_202601_events.csv": content.encode()})
    assert [r[1] for r in _reasons(outcome)] == ["future_date", "out_of_range"]


def test_discharge_before_admission(ingest: Ingest) -> None:
    content = EVENTS_HEADER + "\nV1,P1,hospital_admission,2025-03-10,2025-03-01,false\n"
    assert _reasons(ingest({"AGX/AGX_202601_events.csv": content.encode()})) == [(2, "inconsistent_dates", "end_date")]


def test_negative_and_implausible_hours(ingest: Ingest) -> None:
    content = PLANS_HEADER + "\nP1,2025-03-01,APA,40,-2\nP1,2025-04-01,APA,40,800\nP1,2025-05-01,APA,40,38\n"
    outcome = ingest({"AGX/AGX_202601_service_plans.csv": content.encode()})
    assert [r[1:] for r in _reasons(outcome)] == [("out_of_range", "hours_delivered")] * 2


def test_wrong_types(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons("P1,AGX,about 1940,F,75,true,APA,3")})
    assert _reasons(outcome) == [(2, "invalid_type", "birth_year")]


def test_out_of_range_codes(ingest: Ingest) -> None:
    rows = ("P1,AGX,1940,F,75,true,APA,7", "P2,AGX,1940,X,75,true,APA,3", "P3,AGX,1940,F,75,true,ASPA,3")
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(*rows)})
    assert [r[1:] for r in _reasons(outcome)] == [
        ("out_of_range", "gir_at_intake"),
        ("invalid_code", "sex"),
        ("invalid_code", "benefit"),
    ]


def test_departements_corsica_overseas_and_old_codes(ingest: Ingest) -> None:
    codes = ("2A", "971", "20", "976")
    rows = [f"P{i},AGX,1940,F,{code},true,APA,3" for i, code in enumerate(codes, start=1)]
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(*rows)})
    assert _reasons(outcome) == [(4, "invalid_code", "departement")]


def test_list_of_conditions_with_an_unknown_item(ingest: Ingest) -> None:
    header = PERSONS_HEADER + ",main_conditions"
    rows = (GOOD_PERSON + ",dementia|copd", "P2,AGX,1940,F,75,true,APA,3,dementia|flu")
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(*rows, header=header)})
    assert _reasons(outcome) == [(3, "invalid_code", "main_conditions")]


def test_zarit_items_out_of_range(ingest: Ingest) -> None:
    header = "assessment_id,person_id,assessment_date,zarit_form,zarit_items"
    content = f"{header}\nA1,P1,2025-01-01,zbi22,{'|'.join(['2'] * 22)}\nA2,P1,2025-02-01,zbi22,5|1|1\n"
    assert _reasons(ingest({"AGX/AGX_202601_assessments.csv": content.encode()})) == [
        (3, "out_of_range", "zarit_items")
    ]


def test_missing_required_values(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons("P1,AGX,1940,, 75,true,APA,3")})
    assert _reasons(outcome) == [(2, "missing_value", "sex")]


@pytest.mark.parametrize("formula", ["=1+1", "@SUM(A1)", "-2+3", "+cmd|' /C calc'!A0"])
def test_formula_like_strings(ingest: Ingest, formula: str) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(f'"{formula}",AGX,1940,F,75,true,APA,3')})
    assert _reasons(outcome) == [(2, "formula_like", "person_id")]


def test_very_long_fields(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons("P" * 300 + ",AGX,1940,F,75,true,APA,3")})
    assert _reasons(outcome) == [(2, "field_too_long", "person_id")]


def test_duplicate_rows_and_keys_within_a_file(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON, GOOD_PERSON, "P1,AGX,1941,F,75,true,APA,3")})
    assert [r[:2] for r in _reasons(outcome)] == [(3, "duplicate_row"), (4, "duplicate_key")]


def test_identifiers_written_outside_ascii_are_one_identifier_once_stored(ingest: Ingest) -> None:
    # Full-width letters and digits, a non-breaking hyphen, a zero-width space, non-breaking spaces around
    # and lower case: one person, whose episodes resolve, and whose second spelling is a duplicate. The
    # written forms the engine cannot compute come from Python (keys.normalise_key) for exactly these values.
    spellings = ["\uff30\uff0d\uff11", "\u00a0p\u200b-1\u00a0", "P\u20111"]  # P-1, three ways
    outcome = ingest(
        {
            "AGX/AGX_202601_persons.csv": persons(
                f"{spellings[0]},AGX,1940,F,75,true,APA,3", f"{spellings[1]},AGX,1940,F,75,true,APA,3"
            ),
            "AGX/AGX_202601_episodes.csv": (
                "episode_id,person_id,agency_id,cohort,referral_date,start_date,referral_source,payer,entry_situation\n"
                f"E1,{spellings[2]},AGX,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n"
            ).encode(),
        },
        parents=False,
    )
    assert _reasons(outcome) == [(3, "duplicate_row", None)]
    assert single(outcome, "episodes.csv").status == "accepted"
    stored = outcome.table("raw_persons")["person_id"].to_list()
    assert stored == outcome.table("raw_episodes")["person_id"].to_list()
    assert len(stored) == 1


def test_duplicate_rows_across_files(ingest: Ingest) -> None:
    outcome = ingest(
        {
            "AGX/AGX_202601_persons.csv": persons(GOOD_PERSON),
            "AGX/AGX_202602_persons.csv": persons(GOOD_PERSON, "P2,AGX,1941,F,75,true,APA,3"),
        }
    )
    later = single(outcome, "202602_persons.csv")
    assert (later.status, later.reasons) == ("partial", {"duplicate_row": 1})


def test_agency_id_that_is_not_the_folders(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons("P1,AGZ,1940,F,75,true,APA,3")})
    assert _reasons(outcome) == [(2, "agency_mismatch", "agency_id")]


def test_quoted_fields_with_delimiters_and_newlines(ingest: Ingest) -> None:
    content = (
        NOTES_HEADER + '\nI1,E1,2025-03-15,mediation,"calls, then\na visit"\nI2,E1,2025-03-16,other,ok\n'
    ).encode()
    outcome = ingest({"AGX/AGX_202601_interventions.csv": content})
    report = single(outcome, "interventions.csv")
    assert report.rows_accepted == 2
    assert outcome.table("raw_interventions")["note"].to_list() == ["calls, then\na visit", "ok"]
    # Each record is known by the line it starts on (found by review: every row, quarantined ones
    # included, used to lose its line number, so an agency could not find its refused rows).
    assert outcome.table("raw_interventions")["_source_row"].to_list() == [2, 4]
    assert "multi-line" not in report.message


def test_a_refused_row_after_a_multi_line_field_keeps_its_line(ingest: Ingest) -> None:
    content = (
        NOTES_HEADER
        + '\nI1,E1,2025-03-15,mediation,"two\n\nlines"\nI2,E1,2025-13-16,other,ok\nI3,E1,2025-03-17,other,\n'
    )
    outcome = ingest({"AGX/AGX_202601_interventions.csv": content.encode()})
    assert _reasons(outcome) == [(5, "invalid_type", "intervention_date")]
    assert outcome.table("raw_interventions")["_source_row"].to_list() == [2, 6]


def test_malformed_json_lines(ingest: Ingest) -> None:
    good = (
        '{"person_id": "P1", "agency_id": "AGX", "birth_year": 1940, "sex": "F", "departement": "75", '
        '"lives_alone": true, "benefit": "APA"}'
    )
    content = f'{good}\n{{"person_id": "P2", broken\n[1, 2, 3]\n\n'.encode()
    outcome = ingest({"AGX/AGX_202601_persons.jsonl": content})
    assert _reasons(outcome) == [(2, "malformed_json", None), (3, "malformed_json", None)]
    assert outcome.table("raw_persons")["birth_year"].to_list() == [1940]


def test_parquet_with_wrong_types(ingest: Ingest, tmp_path: Path) -> None:
    frame = pl.DataFrame({"agency_id": ["AGX", "AGX"], "model": ["remote", "hybrid"], "departement": ["75", "75"]})
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    outcome = ingest({"AGX/AGX_202601_agencies.parquet": buffer.getvalue()})
    assert _reasons(outcome) == [(2, "invalid_code", "model")]  # Parquet rows count from 1


def test_xlsx_with_named_sheets_one_unknown(ingest: Ingest) -> None:
    buffer = io.BytesIO()
    import xlsxwriter

    with xlsxwriter.Workbook(buffer) as workbook:
        pl.DataFrame({"agency_id": ["AGX"], "model": ["remote"], "departement": ["75"]}).write_excel(
            workbook, worksheet="agencies"
        )
        pl.DataFrame({"x": [1, 2]}).write_excel(workbook, worksheet="Feuil2")
    outcome = ingest({"AGX/AGX_202601_export.xlsx": buffer.getvalue()})
    report = single(outcome, "export.xlsx")
    assert (report.status, report.reasons) == ("partial", {"unknown_entity": 2})
    assert "Feuil2" in report.message


# --- the privacy guard ----------------------------------------------------------------------------

VALID_NIR = "2 41 03 75 123 456 " + f"{97 - int('2410375123456') % 97:02d}"


@pytest.mark.parametrize(
    "note",
    [
        f"numéro de sécu {VALID_NIR}",
        "appeler sa fille au 06 12 34 56 78",
        "écrire à jeanne.dupont@example.org",
        "habite 12 rue des Lilas",
        "déménagement à 38000",
        "née le 12/03/1941",
    ],
)
def test_identifiers_in_free_text_are_never_stored(ingest: Ingest, note: str) -> None:
    content = (NOTES_HEADER + f'\nI1,E1,2025-03-15,mediation,"{note}"\nI2,E1,2025-03-16,other,RAS\n').encode()
    outcome = ingest({"AGX/AGX_202601_interventions.csv": content})
    report = single(outcome, "interventions.csv")
    assert report.reasons == {"identifier_in_value": 1}
    assert _reasons(outcome) == [(2, "identifier_in_value", "note")]
    assert outcome.quarantine()["raw_line"].to_list() == [None]
    assert note not in report.message
    with duckdb.connect(str(outcome.warehouse_path), read_only=True) as con:
        dump = str(con.execute("select * from raw_interventions").fetchall())
        dump += str(con.execute("select * from raw_quarantine").fetchall())
    assert note.split()[-1] not in dump


def test_an_nir_with_a_wrong_key_is_still_a_nir_but_other_long_numbers_are_not(ingest: Ingest) -> None:
    # Its first 13 characters are a NIR whatever its key; a number of the same length shaped
    # otherwise (no sex digit 1, 2, 7 or 8) is a reference number and passes.
    wrong = VALID_NIR[:-2] + f"{(int(VALID_NIR[-2:]) + 1) % 97:02d}"
    content = (
        NOTES_HEADER + f'\nI1,E1,2025-03-15,other,"ref {wrong}"\nI2,E1,2025-03-15,other,"ref 5{VALID_NIR[1:]}"\n'
    ).encode()
    outcome = ingest({"AGX/AGX_202601_interventions.csv": content})
    assert _reasons(outcome) == [(2, "identifier_in_value", "note")]


def test_a_phone_number_used_as_an_identifier(ingest: Ingest) -> None:
    outcome = ingest({"AGX/AGX_202601_persons.csv": persons("0612345678,AGX,1940,F,75,true,APA,3")})
    assert _reasons(outcome) == [(2, "identifier_in_value", "person_id")]


def test_identifiers_in_other_columns_withhold_the_raw_line(ingest: Ingest) -> None:
    content = persons("P1,AGX,1940,Z,75,true,APA,3,joe@example.org", header=PERSONS_HEADER + ",contact")
    outcome = ingest({"AGX/AGX_202601_persons.csv": content})
    assert _reasons(outcome) == [(2, "identifier_in_value", "contact")]
    assert outcome.quarantine()["raw_line"].to_list() == [None]


# --- idempotency and replacement ------------------------------------------------------------------


def test_the_same_content_twice_adds_nothing(ingest: Ingest) -> None:
    first = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON)})
    again = ingest({"AGX/AGX_202601_persons_copy.csv": persons(GOOD_PERSON)})
    assert single(first, "persons.csv").status == "accepted"
    assert single(again, "persons_copy.csv").status == "duplicate"
    assert again.table("raw_persons").height == 1


def test_a_corrected_file_for_the_same_period_replaces_the_earlier_one(ingest: Ingest) -> None:
    ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON, "P2,AGX,1841,F,75,true,APA,3")})
    corrected = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON, "P2,AGX,1941,F,75,true,APA,3")})
    assert single(corrected, "persons.csv").status == "accepted"
    assert sorted(corrected.table("raw_persons")["birth_year"].to_list()) == [1940, 1941]
    assert corrected.quarantine().is_empty()
    ledger = corrected.table("raw_landing_files").filter(pl.col("entity") == "persons")
    assert sorted(ledger["status"].to_list()) == ["accepted", "superseded"]


def test_a_run_that_dies_midway_leaves_the_warehouse_as_it_was(
    ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON)})
    before = {
        name: Outcome({}, tmp_path / "warehouse.duckdb").table(name).height
        for name in ("raw_persons", "raw_landing_files", "raw_quarantine")
    }
    calls = {"n": 0}
    original = warehouse.insert_frame

    def dies_on_the_second_insert(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(warehouse, "insert_frame", dies_on_the_second_insert)
    with pytest.raises(KeyboardInterrupt):
        ingest({"AGX/AGX_202602_persons.csv": persons("P2,AGX,1941,F,75,true,APA,3", "P3,AGX,X,F,75,true,APA,3")})
    after = {name: Outcome({}, tmp_path / "warehouse.duckdb").table(name).height for name in before}
    assert after == before


# --- isolation, retries, references across runs -----------------------------------------------------

EPISODES_HEADER = "episode_id,person_id,agency_id,cohort,referral_date,start_date,referral_source,payer,entry_situation"


@pytest.mark.parametrize(("threads", "engines_made"), [(1, 2), (2, 3)])
def test_a_file_that_breaks_the_scratch_engine_does_not_stop_the_next_files(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, threads: int, engines_made: int
) -> None:
    # Files are checked in connections of one engine for the run: if a file's failure takes the engine
    # with it, the files after it get a new one. Checked side by side, a file that failed is checked again
    # alone (the file beside it may have been the cause): the one that breaks the engine breaks a second
    # one, and its failure stands.
    from pipelines.ingest import service

    engines: list[duckdb.DuckDBPyConnection] = []
    original_engine, original_validate = service.scratch_engine, service.validate_table

    def recorded(staging: Path) -> duckdb.DuckDBPyConnection:
        engines.append(original_engine(staging))
        return engines[-1]

    def breaks_the_engine(frame: Any, entity: Any, decimal_comma: bool, agency: str, *args: Any) -> Any:
        if getattr(entity, "name", "") == "persons" and agency == "AGX":
            engines[-1].close()
            raise MemoryError("SECRET-VALUE")
        return original_validate(frame, entity, decimal_comma, agency, *args)

    monkeypatch.setenv(service.INGEST_THREADS_VARIABLE, str(threads))
    monkeypatch.setattr(service, "scratch_engine", recorded)
    monkeypatch.setattr(service, "validate_table", breaks_the_engine)
    outcome = ingest(
        {
            "AGX/AGX_202601_persons.csv": persons(GOOD_PERSON),
            "AGY/AGY_202601_persons.csv": persons(GOOD_PERSON.replace("AGX", "AGY")),
            "AGZ/AGZ_202601_persons.csv": persons(GOOD_PERSON.replace("AGX", "AGZ")),
        }
    )
    assert single(outcome, "AGX_202601_persons.csv").reasons == {"processing_error": 0}
    assert single(outcome, "AGY_202601_persons.csv").status == "accepted"
    assert single(outcome, "AGZ_202601_persons.csv").status == "accepted"
    assert len(engines) == engines_made


def test_an_error_in_one_file_is_that_files_report_and_it_is_tried_again(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest import service

    original = service.validate_table

    def fails_on_persons(frame: Any, entity: Any, *args: Any) -> Any:
        if getattr(entity, "name", "") == "persons":
            raise MemoryError("SECRET-VALUE")
        return original(frame, entity, *args)

    monkeypatch.setattr(service, "validate_table", fails_on_persons)
    first = ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON)})
    report = single(first, "persons.csv")
    assert (report.status, report.reasons) == ("rejected", {"processing_error": 0})
    assert "MemoryError" in report.message
    assert "SECRET" not in report.message
    monkeypatch.setattr(service, "validate_table", original)
    again = ingest({})
    assert single(again, "persons.csv").status == "accepted"  # not "duplicate": it failed, it is retried
    assert again.table("raw_persons").height == 1
    ledger = again.table("raw_landing_files").filter(pl.col("entity").is_null() | (pl.col("entity") == "persons"))
    assert sorted(ledger.filter(pl.col("relative_path").str.ends_with("persons.csv"))["status"]) == [
        "accepted",
        "superseded",
    ]


def test_a_file_refused_whole_replaces_nothing(ingest: Ingest) -> None:
    ingest({"AGX/AGX_202601_persons.csv": persons(GOOD_PERSON, "P2,AGX,1941,F,75,true,APA,3")})
    broken = persons("P1,AGX,F,75,true,APA,3", header=PERSONS_HEADER.replace("birth_year,", ""))
    resent = ingest({"AGX/AGX_202601_persons.csv": broken})
    assert single(resent, "persons.csv").reasons == {"missing_required_column": 1}
    assert "earlier file for the same period" in single(resent, "persons.csv").message
    assert resent.table("raw_persons").height == 2


def test_orphans_are_held_back_and_released_when_their_parent_arrives_in_a_later_run(ingest: Ingest) -> None:
    episodes = f"{EPISODES_HEADER}\nE1,P1,AGX,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n"
    interventions = NOTES_HEADER + "\nI1,E1,2025-03-15,mediation,RAS\nI2,E9,2025-03-15,mediation,RAS\n"
    first = ingest(
        {"AGX/AGX_202601_episodes.csv": episodes.encode(), "AGX/AGX_202601_interventions.csv": interventions.encode()},
        parents=False,
    )
    assert single(first, "episodes.csv").reasons == {"orphan_reference": 1}
    assert single(first, "interventions.csv").reasons == {"orphan_reference": 2}  # its episode is held too
    assert "held back" in single(first, "episodes.csv").message
    assert first.table("raw_episodes").is_empty()
    later = ingest({"AGX/AGX_202602_persons.csv": persons(GOOD_PERSON)})
    assert later.table("raw_episodes").height == 1
    assert later.table("raw_interventions").height == 1  # I2's episode never came
    assert _reasons(later) == [(3, "orphan_reference", "episode_id")]
    ledger = later.table("raw_landing_files")
    by_file = {r["relative_path"]: r for r in ledger.iter_rows(named=True)}
    assert (by_file["AGX/AGX_202601_episodes.csv"]["status"], by_file["AGX/AGX_202601_episodes.csv"]["reasons"]) == (
        "accepted",
        "{}",
    )
    notes = by_file["AGX/AGX_202601_interventions.csv"]
    assert (notes["rows_accepted"], notes["rows_quarantined"], notes["status"]) == (1, 1, "partial")


@pytest.mark.parametrize("rows_per_gb", [ORPHAN_CHECK_ROWS_PER_GB, 1])
def test_orphans_are_found_agency_by_agency_whatever_the_batches(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, rows_per_gb: int
) -> None:
    """The orphan check runs on batches of agencies (bounded memory at 10,000,000 persons): one batch for
    all or one agency a batch, the same rows are held back, and a reference resolves only within its own
    agency, stored rows included (AGY's E3 names AGX's P1, stored in an earlier run)."""
    monkeypatch.setattr(service, "ORPHAN_CHECK_ROWS_PER_GB", rows_per_gb)
    ingest({"AGX/AGX_202512_persons.csv": persons(GOOD_PERSON)}, parents=False)
    episodes = EPISODES_HEADER + "\n{}\n"
    outcome = ingest(
        {
            "AGX/AGX_202601_episodes.csv": episodes.format(
                "E1,P1,AGX,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n"
                "E2,P7,AGX,care_managed,2025-01-02,2025-01-10,ccas,family,prevention"
            ).encode(),
            "AGY/AGY_202601_persons.csv": persons("P2,AGY,1941,M,75,false,APA,4"),
            "AGY/AGY_202601_episodes.csv": episodes.format(
                "E1,P2,AGY,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n"
                "E3,P1,AGY,care_managed,2025-01-02,2025-01-10,ccas,family,prevention"
            ).encode(),
        },
        parents=False,
    )
    assert outcome.report("AGX_202601_episodes.csv").reasons == {"orphan_reference": 1}
    assert outcome.report("AGY_202601_episodes.csv").reasons == {"orphan_reference": 1}
    assert outcome.table("raw_episodes").height == 2


def test_agencies_are_batched_in_order_within_the_rows_asked_never_split() -> None:
    assert agency_batches({"B": 4, "A": 3, "C": 9, "D": 1}, 8) == [{"A", "B"}, {"C"}, {"D"}]
    assert agency_batches({"A": 3, "B": 4}, 100) == [{"A", "B"}]
    assert agency_batches({}, 5) == []


def test_a_parent_in_another_file_of_the_same_run_resolves_whatever_the_order(ingest: Ingest) -> None:
    # "A_..." sorts before "B_...": the children are read first.
    episodes = f"{EPISODES_HEADER}\nE1,p1 ,AGX,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n"
    outcome = ingest(
        {"AGX/A_202601_episodes.csv": episodes.encode(), "AGX/B_202601_persons.csv": persons(GOOD_PERSON)},
        parents=False,
    )
    assert single(outcome, "episodes.csv").status == "accepted"
