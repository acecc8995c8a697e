"""Readers and type coercion: every export form reads back to exactly what was generated."""

from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.ingest.coerce import coerce_to_contract
from pipelines.ingest.load import IngestError, read_and_type
from pipelines.ingest.readers import (
    LandingFile,
    ReadError,
    decode_text,
    discover_landing_files,
    entity_from_name,
    read_landing_file,
    sha256_of,
    sniff_delimiter,
)
from pipelines.synthetic.federation import Federation
from tests.conftest import PipelineRun


def _landing_file(path: Path, root: Path) -> LandingFile:
    return LandingFile(path, path.relative_to(root).as_posix(), path.parent.name, path.suffix.lstrip("."),
                       sha256_of(path), path.stat().st_size)  # fmt: skip


def test_raw_tables_hold_exactly_the_generated_rows(small_federation: Federation, small_run: PipelineRun) -> None:
    contract = load_contract()
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        for name, generated in small_federation.tables.items():
            stored = warehouse.query(
                con, f"select * exclude (_agency_folder, _source_file, _source_sha256, _source_row) from raw_{name}"
            )
            key = list(contract.entity(name).primary_key)
            assert_frame_equal(stored.sort(key), generated.sort(key), check_dtypes=True)


def test_every_raw_row_keeps_its_file_hash_and_line(small_run: PipelineRun) -> None:
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        lineage = warehouse.query(
            con, "select _source_file, _source_sha256, min(_source_row) as first_line from raw_events group by all"
        )
        files = warehouse.query(con, "select * from raw_landing_files")
    assert lineage["first_line"].min() == 2  # line 1 is the header
    assert lineage["_source_sha256"].str.len_chars().unique().to_list() == [64]
    assert (files["rows_in"] == files["rows_loaded"]).all()


def test_entity_is_read_from_the_file_or_sheet_name() -> None:
    contract = load_contract()
    assert entity_from_name("AG001_202606_service_plans.csv", contract) == "service_plans"
    assert entity_from_name("plans.csv", contract) is None
    assert entity_from_name("persons", contract) == "persons"
    assert entity_from_name("export_care_managers.parquet", contract) == "care_managers"


def test_encodings_and_delimiters_are_detected() -> None:
    assert decode_text("é;ü".encode("cp1252")) == "é;ü"
    assert decode_text(b"\xef\xbb\xbfa,b") == "a,b"
    assert decode_text("œ €’".encode("cp1252")) == "œ €’"
    assert sniff_delimiter("a;b;c\n1;2;3") == ";"
    assert sniff_delimiter("a\tb\n1\t2") == "\t"
    assert sniff_delimiter("single") == ","


def test_french_numbers_dates_and_booleans_are_typed() -> None:
    entity = load_contract().entity("service_plans")
    frame = pl.DataFrame(
        {
            "_source_row": [2, 3, 4],
            "person_id": ["P1", "P2", "P3"],
            "month": ["01/03/2025", "2025-04-01", "2025-05"],
            "funder": ["APA", "PCH", "APA"],
            "hours_granted": ["1\u00a0234,5", "420", " 12,0 "],
            "hours_delivered": ["90,25", "", "0"],
        }
    )
    typed = coerce_to_contract(frame, entity, decimal_comma=True)
    assert typed.problems == []
    assert typed.frame["hours_granted"].to_list() == [1234.5, 420.0, 12.0]
    assert typed.frame["hours_delivered"].to_list() == [90.25, None, 0.0]
    assert [d.isoformat() for d in typed.frame["month"]] == ["2025-03-01", "2025-04-01", "2025-05-01"]


def test_excel_serial_dates_and_spreadsheet_codes() -> None:
    entity = load_contract().entity("agencies")
    frame = pl.DataFrame({"_source_row": [2], "agency_id": ["A"], "model": ["remote"], "departement": [1.0]})
    assert coerce_to_contract(frame, entity, False).frame["departement"].to_list() == ["1"]
    episodes = load_contract().entity("events")
    frame = pl.DataFrame(
        {
            "_source_row": [2, 3],
            "event_id": ["E1", "E2"],
            "person_id": ["P", "P"],
            "event_type": ["fall"] * 2,
            "event_date": [45658, 45659],
            "planned": ["oui", "NON"],
        }
    )
    typed = coerce_to_contract(frame, episodes, False).frame
    assert [d.isoformat() for d in typed["event_date"]] == ["2025-01-01", "2025-01-02"]
    assert typed["planned"].to_list() == [True, False]


def test_unreadable_values_are_reported_by_column_count_and_line_never_by_value() -> None:
    entity = load_contract().entity("persons")
    frame = pl.DataFrame(
        {
            "_source_row": [2, 3, 4],
            "person_id": ["P1", "P2", "P3"],
            "agency_id": ["A"] * 3,
            "birth_year": ["1940", "SECRET-VALUE", "1941"],
            "sex": ["F"] * 3,
            "departement": ["75"] * 3,
            "lives_alone": ["oui", "non", "peut-etre"],
            "benefit": ["APA"] * 3,
        }
    )
    typed = coerce_to_contract(frame, entity, decimal_comma=False)
    messages = [problem.describe(field.type) for field, problem in typed.problems]
    assert messages == [
        "column 'birth_year': 1 value not readable as integer (first at line 3)",
        "column 'lives_alone': 1 value not readable as boolean (first at line 4)",
    ]
    assert typed.frame.height == 3


def test_a_bad_file_stops_the_load_with_a_clear_message(tmp_path: Path) -> None:
    folder = tmp_path / "AGX"
    folder.mkdir()
    (folder / "AGX_202601_agencies.csv").write_text("agency_id,model\nAGX,remote\n")
    (folder / "AGX_202601_persons.csv").write_text(
        "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit,favourite_colour\n"
        "P1,AGX,1940,F,75,true,APA,blue\n"
    )
    (folder / "AGX_202601_mystery.csv").write_text("a,b\n1,2\n")
    files = discover_landing_files(tmp_path)
    with pytest.raises(IngestError) as caught:
        read_and_type(files, load_contract())
    message = str(caught.value)
    assert "AGX/AGX_202601_agencies.csv (agencies): required columns missing: departement" in message
    assert "AGX/AGX_202601_persons.csv (persons): columns not in the contract: favourite_colour" in message
    assert "AGX/AGX_202601_mystery.csv: cannot tell which entity" in message
    assert "blue" not in message


def test_a_corrupt_file_is_named_without_leaking_content(tmp_path: Path) -> None:
    path = tmp_path / "AGX" / "AGX_persons.parquet"
    path.parent.mkdir()
    path.write_bytes(b"not parquet at all: Jean Dupont 1 40 01 75 123 456")
    with pytest.raises(ReadError) as caught:
        read_landing_file(_landing_file(path, tmp_path), load_contract())
    assert "AGX/AGX_persons.parquet" in str(caught.value)
    assert "Dupont" not in str(caught.value)


def test_a_failed_load_leaves_the_warehouse_as_it_was(small_run: PipelineRun, tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(small_run.settings.warehouse_path.read_bytes())
    contract = load_contract()
    from pipelines.ingest.load import load_raw_tables

    frames: dict[str, list[pl.DataFrame]] = {e: [] for e in contract.entities}
    frames["persons"] = [pl.DataFrame({"person_id": ["X"]})]  # missing columns: the insert fails
    with duckdb.connect(str(copy)) as con:
        before = con.execute("select count(*) from raw_persons").fetchone()
        with pytest.raises(Exception):  # noqa: B017, PT011 (any failure must roll back)
            load_raw_tables(con, contract, frames, [])
        assert con.execute("select count(*) from raw_persons").fetchone() == before
        assert con.execute("select count(*) from raw_events").fetchone() != (0,)
