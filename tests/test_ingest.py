"""Readers, typing and the warehouse round trip: every export form reads back to what was generated."""

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.ingest.coerce import typed_layers
from pipelines.ingest.pseudonyms import DEMO_KEY, rekey
from pipelines.ingest.readers import decode_text, detect_encoding, entity_from_name, sniff_delimiter
from pipelines.ingest.service import LINKAGE_SCOPE
from pipelines.ingest.source import source_from_frame
from pipelines.ingest.validate import validate_table
from pipelines.synthetic.exports import split_by_agency
from pipelines.synthetic.federation import Federation
from tests.conftest import PipelineRun

TODAY = date(2026, 11, 23)


def _pseudonymised(federation: Federation, entity: str) -> pl.DataFrame:
    contract = load_contract()
    parts = []
    for agency, tables in split_by_agency(federation).items():
        frame = tables[entity]
        for field in contract.entity(entity).fields:
            if field.pseudonym:
                scope = LINKAGE_SCOPE if field.linkage else agency
                frame = frame.with_columns(rekey(frame[field.name], scope, DEMO_KEY))
        parts.append(frame)
    return pl.concat(parts)


def test_raw_tables_hold_exactly_the_generated_rows(small_federation: Federation, small_run: PipelineRun) -> None:
    contract = load_contract()
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        for name in small_federation.tables:
            stored = warehouse.query(
                con, f"select * exclude (_agency_folder, _source_file, _source_sha256, _source_row) from raw_{name}"
            )
            expected = _pseudonymised(small_federation, name)
            columns = contract.entity(name).field_names
            assert_frame_equal(stored.sort(columns), expected.sort(columns), check_dtypes=True)


def test_agency_identifiers_never_reach_the_warehouse(small_federation: Federation, small_run: PipelineRun) -> None:
    original = set(small_federation.tables["persons"]["person_id"].head(50))
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        stored = set(warehouse.query(con, "select person_id from raw_persons")["person_id"])
    assert not original & stored
    assert all(len(p) == 32 for p in stored)


def test_every_raw_row_keeps_its_file_hash_and_line(small_run: PipelineRun) -> None:
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        lineage = warehouse.query(
            con,
            "select _source_file, _source_sha256, min(_source_row) as first_line, max(_source_row) as last_line, "
            "count(*) as n from raw_events group by all",
        )
        files = warehouse.query(con, "select * from raw_landing_files")
    csv_files = lineage.filter(pl.col("_source_file").str.ends_with(".csv"))
    assert (csv_files["first_line"] == 2).all()  # line 1 is the header
    assert (csv_files["last_line"] == csv_files["n"] + 1).all()
    assert lineage["_source_sha256"].str.len_chars().unique().to_list() == [64]
    assert (files["status"] == "accepted").all()
    assert (files["rows_in"] == files["rows_accepted"] + files["rows_quarantined"]).all()


def test_entity_is_read_from_the_file_or_sheet_name() -> None:
    contract = load_contract()
    assert entity_from_name("AG001_202606_service_plans.csv", contract) == "service_plans"
    assert entity_from_name("plans.csv", contract) is None
    assert entity_from_name("persons", contract) == "persons"
    assert entity_from_name("export_care_managers.parquet", contract) == "care_managers"


def test_encodings_and_delimiters_are_detected(tmp_path: Path) -> None:
    assert decode_text("é;ü".encode("cp1252")) == "é;ü"
    assert decode_text(b"\xef\xbb\xbfa,b") == "a,b"
    assert decode_text("œ €’".encode("cp1252")) == "œ €’"
    assert sniff_delimiter("a;b;c") == ";"
    assert sniff_delimiter("a\tb") == "\t"
    assert sniff_delimiter("single") == ","
    samples = {
        "utf8": "é".encode() * 10,
        "cp1252": "œ€’é".encode("cp1252"),
        # Bytes Windows-1252 leaves undefined cost their rows only: the file is still Windows-1252.
        "undefined": b"\x81\xe9",
        # A byte-order mark declares UTF-8, whatever stray byte follows.
        "bom": b"\xef\xbb\xbfa;b\n\xe9;1\n",
    }
    for name, content in samples.items():
        (tmp_path / name).write_bytes(content)
    assert detect_encoding(tmp_path / "utf8") == "utf-8"
    assert detect_encoding(tmp_path / "cp1252") == "cp1252"
    assert detect_encoding(tmp_path / "undefined") == "cp1252"
    assert detect_encoding(tmp_path / "bom") == "utf-8"


def _typed(field_name: str, entity: str, values: list[object], decimal_comma: bool = False) -> list[Any]:
    """The values as ingestion types them (in the engine, in layers)."""
    field = load_contract().entity(entity).field(field_name)
    with duckdb.connect() as con:
        source = source_from_frame(con, pl.DataFrame({field_name: values}, strict=False), "values")
        query = f"select * from {source.rows_sql}"
        layers = typed_layers(field, source.column(0), source.types[0], decimal_comma, "typed")
        for depth, expression in enumerate(layers):
            query = f"select *, {expression} as typed_{depth} from ({query})"
        return [
            row[0]
            for row in con.execute(f"select typed_{len(layers) - 1} from ({query}) order by _position").fetchall()
        ]


def test_french_numbers_dates_and_booleans_are_typed() -> None:
    assert _typed("hours_granted", "service_plans", ["1\u00a0234,5", "420", " 12,0 ", ""], True) == [
        1234.5,
        420.0,
        12.0,
        None,
    ]
    assert _typed("hours_granted", "service_plans", ["1,234.5", "12"], False) == [1234.5, 12.0]
    months = _typed("month", "service_plans", ["01/03/2025", "2025-04-01", "2025-05", "03/2025"])
    assert [d.isoformat() for d in months] == ["2025-03-01", "2025-04-01", "2025-05-01", "2025-03-01"]
    assert _typed("lives_alone", "persons", ["oui", "NON", "Vrai", "0", "peut-être"]) == [
        True,
        False,
        True,
        False,
        None,
    ]


def test_a_decimal_point_is_never_read_as_a_thousands_separator() -> None:
    # Found by review: "40.5" in a semicolon file was stored as 405 hours, silently.
    values: list[object] = ["40.5", "12.25", "1.234", "1.234.567", "1.234,5", "0,125", "1,5", "12.5.3", "100.000"]
    assert _typed("hours_granted", "service_plans", values, True) == [
        40.5, 12.25, None, 1234567.0, 1234.5, 0.125, 1.5, None, None
    ]  # fmt: skip
    # A comma file (decimal commas quoted): "1,5" is 1.5, never 15; "1,234" could be either.
    values = ["1,5", "0,125", "1,234", "1,234,567", "1,234.5", "1.5", "1.234"]
    assert _typed("hours_granted", "service_plans", values, False) == [
        1.5, 0.125, None, 1234567.0, 1234.5, 1.5, 1.234
    ]  # fmt: skip


def test_day_first_and_year_first_dates_with_any_separator_and_a_time_part() -> None:
    values: list[object] = ["10-01-2025", "10.01.2025", "2025/01/10", "10/01/2025 00:00", "10/01/2025 08:30:15"]
    assert {d.isoformat() for d in _typed("event_date", "events", values)} == {"2025-01-10"}
    refused: list[object] = ["20250110", "10/01-2025", "Jan 10, 2025", "2025-02-30", "10/01/2025 midi", "1.2,3"]
    assert _typed("event_date", "events", refused) == [None] * len(refused)


def test_excel_serials_ambiguous_dates_and_spreadsheet_codes() -> None:
    dates = _typed("event_date", "events", ["45658", "2025-01-01 00:00:00", "01/02/25", "12/31/2025", "2025-13-01"])
    assert [d.isoformat() if d else None for d in dates] == ["2025-01-01", "2025-01-01", None, None, None]
    assert [d.isoformat() for d in _typed("event_date", "events", [45658, 45659])] == ["2025-01-01", "2025-01-02"]
    assert _typed("departement", "agencies", [1.0, 75.0]) == ["1", "75"]


def test_validation_keeps_every_row_and_names_reasons_not_values() -> None:
    entity = load_contract().entity("persons")
    frame = pl.DataFrame(
        {
            "_source_row": [2, 3, 4, 5],
            "person_id": ["P1", "P2", "P3", "P4"],
            "agency_id": ["A"] * 4,
            "birth_year": ["1940", "SECRET-VALUE", "1941", "1942"],
            "sex": ["F", "F", "F", "Z"],
            "departement": ["75", "75", "75", "2B"],
            "lives_alone": ["oui", "non", "peut-etre", "non"],
            "benefit": ["APA"] * 4,
        }
    )
    result = validate_table(frame, entity, decimal_comma=False, agency="A", today=TODAY)
    assert result.accepted["person_id"].to_list() == ["P1"]
    assert result.rejected.rows() == [
        (3, "invalid_type", "birth_year"),
        (4, "invalid_type", "lives_alone"),
        (5, "invalid_code", "sex"),
    ]


def test_windows_1252_text_with_no_utf8_sequence_is_not_taken_for_utf8(tmp_path: Path) -> None:
    # Found by hypothesis: "éœ" in Windows-1252 is E9 9C, which starts like a UTF-8 sequence.
    (tmp_path / "f").write_bytes('"éœ";"éœ";"éœ"\n'.encode("cp1252") * 3)
    assert detect_encoding(tmp_path / "f") == "cp1252"


def test_the_documentation_lists_every_reason_code_and_the_exit_statuses() -> None:
    from pipelines.ingest.reasons import DESCRIPTIONS, FILE_REASONS, Reason
    from pipelines.settings import project_root

    text = (project_root() / "docs" / "ingestion.md").read_text(encoding="utf-8")
    for reason in Reason:
        level = "file" if reason in FILE_REASONS else "row"
        assert f"| `{reason.value}` | {level} |" in text, reason
        assert reason in DESCRIPTIONS
    assert "## Exit statuses" in text
    for command in ("parcours ingest", "parcours run"):
        assert f"| `{command}" in text
