"""Fuzzing every reader: whatever bytes arrive, each file ends in a report, nothing is lost.

Random bytes, truncations and byte flips of valid files, and rows in mixed encodings, for CSV,
XLSX, Parquet and JSON Lines. The invariants: one report per file, a known status and known
reason codes, rows in = accepted + quarantined (in the report and in the stored tables), and
no exception. The large fixed cases (40 MB lines, bombs) are in the hostile-file corpus.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory

import duckdb
import polars as pl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelines.contract import load_contract
from pipelines.ingest.load import unaccounted_rows
from pipelines.ingest.privacy import find_identifiers
from pipelines.ingest.pseudonyms import DEMO_KEY
from pipelines.ingest.readers import discover_landing_files
from pipelines.ingest.reasons import Reason
from pipelines.ingest.service import FileReport, ingest_files
from tests.hypothesis_budget import examples

TODAY = date(2026, 11, 23)
STATUSES = {"accepted", "partial", "rejected"}
CODES = {r.value for r in Reason}
FUZZ = settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
PERSONS = pl.DataFrame(
    {
        "person_id": ["P1", "P2", "P3", "P4"],
        "agency_id": ["AGF"] * 4,
        "birth_year": [1931, 1940, 1945, 1950],
        "sex": ["F", "M", "F", "M"],
        "departement": ["75", "2A", "971", "13"],
        "lives_alone": [True, False, True, False],
        "benefit": ["APA", "PCH", "none", "APA"],
    }
)


def _csv(separator: str = ",", encoding: str = "utf-8") -> bytes:
    return PERSONS.write_csv(separator=separator).replace("P3", "Pé3").encode(encoding)


def _xlsx() -> bytes:
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer) as workbook:
        PERSONS.write_excel(workbook, worksheet="persons")
    return buffer.getvalue()


def _parquet() -> bytes:
    buffer = io.BytesIO()
    PERSONS.write_parquet(buffer)
    return buffer.getvalue()


def _jsonl() -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in PERSONS.iter_rows(named=True)).encode()


VALID: dict[str, Callable[[], bytes]] = {
    "AGF_202601_persons.csv": _csv,
    "AGF_202602_persons.csv": lambda: _csv(";", "cp1252"),
    "AGF_202601_export.xlsx": _xlsx,
    "AGF_202601_persons.parquet": _parquet,
    "AGF_202601_persons.jsonl": _jsonl,
}
NAMES = sorted(VALID)
SAMPLES = {name: build() for name, build in VALID.items()}


def ingest_bytes(files: dict[str, bytes]) -> list[FileReport]:
    """Ingest the files of one agency into an in-memory warehouse and check every invariant."""
    with TemporaryDirectory(prefix="parcours-fuzz-") as folder:
        for name, content in files.items():
            (Path(folder) / "AGF").mkdir(exist_ok=True)
            (Path(folder) / "AGF" / name).write_bytes(content)
        con = duckdb.connect(":memory:")
        try:
            reports = ingest_files(con, discover_landing_files(Path(folder)), load_contract(), DEMO_KEY, TODAY)
            assert unaccounted_rows(con, load_contract()).is_empty()
        finally:
            con.close()
    distinct = {name for name, content in files.items()}
    assert len(reports) == len(distinct)
    for report in reports:
        assert report.status in STATUSES | {"duplicate"}, report
        assert set(report.reasons) <= CODES, report
        assert report.rows_in == report.rows_accepted + report.rows_quarantined, report
        assert report.message.startswith(report.file)
    return reports


@FUZZ
@given(content=st.binary(max_size=3000), name=st.sampled_from(NAMES))
def test_random_bytes_in_any_format(content: bytes, name: str) -> None:
    ingest_bytes({name: content})


@FUZZ
@given(name=st.sampled_from(NAMES), cut=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_truncated_files(name: str, cut: float) -> None:
    sample = SAMPLES[name]
    ingest_bytes({name: sample[: int(len(sample) * cut)]})


@FUZZ
@given(name=st.sampled_from(NAMES), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                                                   min_size=1, max_size=6))  # fmt: skip
def test_files_with_flipped_bytes(name: str, flips: list[tuple[float, int]]) -> None:
    content = bytearray(SAMPLES[name])
    for where, byte in flips:
        content[int(where * len(content))] = byte
    ingest_bytes({name: bytes(content)})


ROW_TEXT = st.text(alphabet=st.sampled_from("abcéèàçœ€’ 0123"), min_size=1, max_size=8)


@FUZZ
@example(rows=[("01000", "utf-8")], bom=False)  # found by Hypothesis: a postcode
@given(rows=st.lists(st.tuples(ROW_TEXT, st.sampled_from(["utf-8", "cp1252", "latin-1"])), min_size=1, max_size=12),
       bom=st.booleans())  # fmt: skip
def test_rows_in_mixed_encodings_are_each_kept_or_quarantined(rows: list[tuple[str, str]], bom: bool) -> None:
    header = b"person_id,agency_id,birth_year,sex,departement,lives_alone,benefit,remark\n"
    lines = [
        f"P{i},AGF,1940,F,75,true,APA,{text}\n".encode(encoding, "replace") for i, (text, encoding) in enumerate(rows)
    ]
    (report,) = ingest_bytes({"AGF_202601_persons.csv": (b"\xef\xbb\xbf" if bom else b"") + header + b"".join(lines)})
    assert report.rows_in == len(rows)  # every row counted: never the whole file for one bad row
    # A remark of five digits is a postcode to the privacy guard (``01000``): its row is quarantined for that.
    planted = {"identifier_in_value"} if any(find_identifiers(t, free_text=True) for t, _ in rows) else set()
    assert set(report.reasons) <= {"invalid_encoding", "control_characters", *planted}
    if bom:  # the mark declares UTF-8: no column name swallows it
        assert report.status != "rejected" or report.reasons.get("invalid_encoding") == len(rows)


@FUZZ
@given(depth=st.integers(1, 50_000), kind=st.sampled_from(["[]", "{}"]))
def test_deeply_nested_json(depth: int, kind: str) -> None:
    opening, closing = ('{"a":', "}") if kind == "{}" else ("[", "]")
    line = (opening * depth + "1" + closing * depth).encode()
    (report,) = ingest_bytes({"AGF_202601_persons.jsonl": _jsonl() + line + b"\n"})
    assert report.rows_in == 5
    assert report.rows_accepted == 4


@FUZZ
@given(fields=st.lists(st.text(max_size=30), min_size=7, max_size=9), delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_arbitrary_text_fields(fields: list[str], delimiter: str) -> None:
    header = delimiter.join(["person_id", "agency_id", "birth_year", "sex", "departement", "lives_alone", "benefit"])
    row = delimiter.join(f.replace("\x00", "") for f in fields)
    ingest_bytes({"AGF_202601_persons.csv": (header + "\n" + row + "\n").encode("utf-8", "surrogatepass")})


def test_a_reader_library_that_panics_on_a_file_makes_it_unreadable_and_the_others_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Flipped bytes once made polars' Parquet reader panic (pyo3's PanicException, a BaseException that
    # `except Exception` let through, ending the batch). Any Rust panic in a reader must stay the file's own.
    from polars.exceptions import PanicException

    def panics(*args: object, **kwargs: object) -> None:
        raise PanicException("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(pl, "read_parquet", panics)
    parquet = next(n for n in NAMES if n.endswith(".parquet"))
    other = next(n for n in NAMES if not n.endswith(".parquet") and not n.endswith(".xlsx"))
    reports = {r.file.split("/")[-1]: r for r in ingest_bytes({parquet: SAMPLES[parquet], other: SAMPLES[other]})}
    assert reports[parquet].status == "rejected"
    assert "not readable as Parquet (PanicException)" in reports[parquet].message
    assert reports[other].status == "accepted"
