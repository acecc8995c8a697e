"""Hostile files: what messy exports, careless operators and attackers put in a landing folder.

Each case is one file in its own agency folder, built here (no large binary in the
repository) and ingested together with all the others in one batch: one bad file must never
stop the batch. Each case states its expected outcome: the file's status and its reasons with
their counts (a file-level reason counts the rows it refused, 0 when none could be counted),
and, where it matters, rows in and accepted.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

PERSONS = "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit"
PERSON = "P{n},{agency},194{n},F,75,true,APA"
BIG = 40 * 1024 * 1024
"""A 40 MB line: over DuckDB's line limit, the header limit and the field limits alike."""


@dataclass(frozen=True)
class Expect:
    status: str
    reasons: dict[str, int]
    rows_in: int | None = None
    rows_accepted: int | None = None


@dataclass(frozen=True)
class Hostile:
    id: str
    name: str
    """File name inside the case's agency folder; ``{a}`` is the agency."""
    build: Callable[[str], bytes]
    """Content for agency ``a``."""
    expect: Expect
    note: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def agency(self) -> str:
        return "H" + self.id.upper().replace("-", "_")

    @property
    def path(self) -> str:
        return f"{self.agency}/{self.name.format(a=self.agency)}"


def persons_csv(agency: str, rows: int = 3, delimiter: str = ",", extra: str = "", header_extra: str = "") -> bytes:
    lines = [PERSONS + header_extra] + [PERSON.format(n=n, agency=agency) + extra for n in range(1, rows + 1)]
    return ("\n".join(lines) + "\n").replace(",", delimiter).encode()


def _random(size: int, seed: int) -> bytes:
    """Seeded, so that every run builds the same files (not a secret: S311 does not apply)."""
    return random.Random(seed).randbytes(size)  # noqa: S311


def _zip(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _xlsx(sheets: dict[str, pl.DataFrame]) -> bytes:
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer) as workbook:
        for name, frame in sheets.items():
            frame.write_excel(workbook, worksheet=name)
    return buffer.getvalue()


def _persons_frame(agency: str, rows: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "person_id": [f"P{n}" for n in range(1, rows + 1)],
            "agency_id": [agency] * rows,
            "birth_year": [1940 + n for n in range(1, rows + 1)],
            "sex": ["F"] * rows,
            "departement": ["75"] * rows,
            "lives_alone": [True] * rows,
            "benefit": ["APA"] * rows,
        }
    )


def _parquet(table: pa.Table, **options: object) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def _persons_parquet(agency: str, **columns: object) -> bytes:
    frame = _persons_frame(agency)
    table = frame.to_arrow()
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values))
    return _parquet(table)


def _parquet_bomb(_: str) -> bytes:
    # Ten million zeros, stored plain (no dictionary, no run-length) and compressed: a few
    # kilobytes that expand to 80 MB.
    zeros = pa.table({"person_id": pa.array([0] * 10_000_000, type=pa.int64())})
    return _parquet(zeros, use_dictionary=False, compression="zstd", column_encoding={"person_id": "PLAIN"})


def _jsonl(agency: str, *extra_lines: bytes) -> bytes:
    rows = [
        json.dumps({"person_id": f"P{n}", "agency_id": agency, "birth_year": 1940 + n, "sex": "F",
                    "departement": "75", "lives_alone": True, "benefit": "APA"}).encode()
        for n in range(1, 3)
    ]  # fmt: skip
    return b"\n".join([*rows, *extra_lines]) + b"\n"


def _utf8_with_a_cp1252_row(agency: str) -> bytes:
    """Four UTF-8 rows, then one written in Windows-1252 (two exports pasted together)."""
    rows = [PERSONS + ",comment"] + [PERSON.format(n=n, agency=agency) + ",été" for n in range(1, 5)]
    return ("\n".join(rows) + "\n").encode() + (PERSON.format(n=5, agency=agency) + ",été\n").encode("cp1252")


def _cp1252_with_an_undefined_byte(agency: str) -> bytes:
    rows = [PERSONS.replace(",", ";") + ";comment"] + [
        PERSON.format(n=n, agency=agency).replace(",", ";") + ";cœur 20 €" for n in range(1, 4)
    ]
    return ("\n".join(rows) + "\n").encode("cp1252").replace(b"P2;", b"P2\x81;")


def _truncated(content: bytes) -> bytes:
    return content[: len(content) // 2]


HOSTILE_FILES: tuple[Hostile, ...] = (
    # --- not a table at all ---------------------------------------------------------------------
    Hostile("empty", "{a}_202601_persons.csv", lambda a: b"", Expect("rejected", {"empty_file": 0}, 0)),
    Hostile("blank", "{a}_202601_persons.csv", lambda a: b"\n\n\r\n  \n", Expect("rejected", {"empty_file": 0})),
    Hostile("bom-only", "{a}_202601_persons.csv", lambda a: b"\xef\xbb\xbf", Expect("rejected", {"empty_file": 0})),
    Hostile(
        "random-4k",
        "{a}_202601_persons.csv",
        lambda a: _random(4096, 1),
        Expect("rejected", {"unreadable_file": 0}, 0),
        "random binary named .csv (the issue's traceback)",
    ),
    Hostile(
        "random-1m",
        "{a}_202601_persons.csv",
        lambda a: _random(1 << 20, 2),
        Expect("rejected", {"unreadable_file": 0}, 0),
    ),
    Hostile(
        "nul-bytes", "{a}_202601_persons.csv", lambda a: b"\x00" * 5000, Expect("rejected", {"unreadable_file": 0})
    ),
    Hostile(
        "png",
        "{a}_202601_persons.csv",
        lambda a: b"\x89PNG\r\n\x1a\n" + _random(600, 3),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "pdf",
        "{a}_202601_persons.csv",
        lambda a: b"%PDF-1.7\n" + _random(600, 4),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "zip-as-csv",
        "{a}_202601_persons.csv",
        lambda a: _zip({"persons.csv": persons_csv(a)}),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "gzip-as-csv",
        "{a}_202601_persons.csv",
        lambda a: gzip.compress(persons_csv(a)),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "xls-as-csv",
        "{a}_202601_persons.csv",
        lambda a: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + _random(600, 5),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "parquet-as-csv",
        "{a}_202601_persons.csv",
        lambda a: _parquet(_persons_frame(a).to_arrow()),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "utf16le",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).decode().encode("utf-16"),
        Expect("rejected", {"unreadable_file": 0}),
        "Excel's 'Unicode text'",
    ),
    Hostile(
        "utf16be",
        "{a}_202601_persons.csv",
        lambda a: b"\xfe\xff" + persons_csv(a).decode().encode("utf-16-be"),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    # --- formats no reader takes ------------------------------------------------------------------
    Hostile(
        "json",
        "{a}_202601_persons.json",
        lambda a: b'[{"person_id": "P1"}]',
        Expect("rejected", {"unsupported_format": 0}, 0),
        "a .json file: reported, not skipped",
    ),
    Hostile(
        "xls",
        "{a}_202601_persons.xls",
        lambda a: b"\xd0\xcf\x11\xe0" + _random(100, 6),
        Expect("rejected", {"unsupported_format": 0}),
    ),
    Hostile(
        "pdf-file", "{a}_202601_rapport.pdf", lambda a: b"%PDF-1.4\n", Expect("rejected", {"unsupported_format": 0})
    ),
    Hostile(
        "csv-gz",
        "{a}_202601_persons.csv.gz",
        lambda a: gzip.compress(persons_csv(a)),
        Expect("rejected", {"unsupported_format": 0}),
    ),
    Hostile(
        "no-extension", "{a}_202601_persons", lambda a: persons_csv(a), Expect("rejected", {"unsupported_format": 0})
    ),
    Hostile(
        "ods",
        "{a}_202601_persons.ods",
        lambda a: _zip({"content.xml": b"<x/>"}),
        Expect("rejected", {"unsupported_format": 0}),
    ),
    # --- text that is not the table it claims to be -------------------------------------------
    Hostile(
        "prose-txt",
        "readme.txt",
        lambda a: "Export de mars, voir la pièce jointe\n".encode(),
        Expect("rejected", {"unknown_entity": 0}, 0),
        "a .txt that is not a CSV: never 'accepted 0 of 0'",
    ),
    Hostile(
        "prose-txt-entity",
        "{a}_202601_persons.txt",
        lambda a: b"Bonjour\nvoici l'export\nCordialement\n",
        Expect("rejected", {"missing_required_column": 2}),
    ),
    Hostile(
        "html",
        "{a}_202601_persons.csv",
        lambda a: b"<html><body><table><tr><td>P1</td></tr></table></body></html>\n",
        Expect("rejected", {"missing_required_column": 0}),
    ),
    Hostile(
        "unknown-entity", "{a}_202601_clients.csv", lambda a: persons_csv(a), Expect("rejected", {"unknown_entity": 3})
    ),
    # --- headers ----------------------------------------------------------------------------------
    Hostile(
        "one-40mb-line",
        "{a}_202601_persons.csv",
        lambda a: b"x" * BIG,
        Expect("rejected", {"malformed_header": 0}, 0),
        "the issue's 40 MB single line",
    ),
    Hostile(
        "header-70kb",
        "{a}_202601_persons.csv",
        lambda a: (",".join(f"c{i}" for i in range(12_000)) + "\n1\n").encode(),
        Expect("rejected", {"malformed_header": 0}),
    ),
    Hostile(
        "header-nul",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b"sex", b"s\x00x", 1),
        Expect("rejected", {"malformed_header": 0}),
    ),
    Hostile(
        "header-empty-names",
        "{a}_202601_persons.csv",
        lambda a: b",,,,\n1,2,3,4,5\n",
        Expect("rejected", {"malformed_header": 0}),
    ),
    Hostile(
        "header-repeated",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a, header_extra=",Sex", extra=",F"),
        Expect("rejected", {"malformed_header": 0}),
    ),
    Hostile(
        "header-cr-only",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b"\n", b"\r"),
        Expect("rejected", {"malformed_header": 0}),
        "classic Mac line ends: one line with carriage returns",
    ),
    Hostile(
        "header-unclosed-quote",
        "{a}_202601_persons.csv",
        lambda a: b'"' + persons_csv(a),
        Expect("rejected", {"malformed_header": 0}),
        "an open quote would swallow every line after it",
    ),
    Hostile(
        "missing-column",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b",benefit", b"").replace(b",APA", b""),
        Expect("rejected", {"missing_required_column": 3}),
    ),
    Hostile(
        "identifier-column",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a, header_extra=",Téléphone", extra=",0612345678"),
        Expect("rejected", {"identifier_column": 3}),
    ),
    Hostile(
        "iban-column",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a, header_extra=",IBAN", extra=",x"),
        Expect("rejected", {"identifier_column": 3}),
    ),
    # --- encodings ------------------------------------------------------------------------------------
    Hostile(
        "bom-and-cp1252-byte",
        "{a}_202601_persons.csv",
        lambda a: b"\xef\xbb\xbf" + persons_csv(a, 4).replace(b"P2,", "P2é,".encode("cp1252")),
        Expect("partial", {"invalid_encoding": 1}, 4, 3),
        "the issue's BOM case: never missing_required_column",
    ),
    Hostile(
        "bom-as-cp1252-text",
        "{a}_202601_persons.csv",
        lambda a: "ï»¿".encode() + persons_csv(a),
        Expect("accepted", {}, 3, 3),
    ),
    Hostile(
        "double-bom",
        "{a}_202601_persons.csv",
        lambda a: b"\xef\xbb\xbf" * 2 + persons_csv(a),
        Expect("accepted", {}, 3, 3),
    ),
    Hostile(
        "utf8-with-a-cp1252-row",
        "{a}_202601_persons.csv",
        _utf8_with_a_cp1252_row,
        Expect("partial", {"invalid_encoding": 1}, 5, 4),
        "mixed encodings: two exports pasted together",
    ),
    Hostile(
        "cp1252-undefined-byte",
        "{a}_202601_persons.csv",
        _cp1252_with_an_undefined_byte,
        Expect("partial", {"invalid_encoding": 1}, 3, 2),
    ),
    Hostile(
        "crlf-mixed",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b"\n", b"\r\n", 2),
        Expect("accepted", {}, 3, 3),
        "Windows and Unix line ends in one file",
    ),
    Hostile(
        "crlf-then-lf",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b"\n", b"\r\n").replace(b"\r\n", b"\n", 1),
        Expect("accepted", {}, 3, 3),
    ),
    # --- rows ------------------------------------------------------------------------------------------
    Hostile(
        "huge-row",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a) + b"P9," + b"x" * BIG + b"\n",
        Expect("partial", {"malformed_row": 1}, 4, 3),
        "a 40 MB data line (two fields: the count fails first)",
    ),
    Hostile(
        "huge-quoted-field",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a) + b"P9," + a.encode() + b',1940,F,75,true,"' + b"y" * BIG + b'"\n',
        Expect("partial", {"field_too_long": 1}, 4, 3),
    ),
    Hostile(
        "huge-unknown-column",
        "{a}_202601_persons.csv",
        lambda a: (
            persons_csv(a, 2, header_extra=",remarque", extra=",ok")
            + (PERSON.format(n=3, agency=a) + ",").encode()
            + b"z" * 20_000
            + b"\n"
        ),
        Expect("partial", {"field_too_long": 1}, 3, 2),
    ),
    Hostile(
        "truncated-row",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a) + b"P9," + a.encode() + b",19",
        Expect("partial", {"malformed_row": 1}, 4, 3),
    ),
    Hostile(
        "truncated-in-quote",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a) + b'"P9,' + a.encode(),
        Expect("partial", {"malformed_row": 1}, 4, 3),
    ),
    Hostile(
        "ragged",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a) + b"P8,x\nP9,1,2,3,4,5,6,7,8,9\n",
        Expect("partial", {"malformed_row": 2}, 5, 3),
    ),
    Hostile(
        "control-char",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b"P2,", b"P2\x07,"),
        Expect("partial", {"control_characters": 1}, 3, 2),
    ),
    Hostile(
        "formula",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b"P2,", b'"=HYPERLINK(""x"")",'),
        Expect("partial", {"formula_like": 1}, 3, 2),
    ),
    Hostile(
        "long-id",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a).replace(b"P2,", b"P" * 300 + b","),
        Expect("partial", {"field_too_long": 1}, 3, 2),
    ),
    Hostile(
        "all-duplicated",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a, 1) + (PERSON.format(n=1, agency=a) + "\n").encode() * 2,
        Expect("partial", {"duplicate_row": 2}, 3, 1),
    ),
    Hostile(
        "ids-differing-in-case-and-space",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a, 1) + f"p1 ,{a},1941,F,75,true,APA\n".encode(),
        Expect("partial", {"duplicate_row": 1}, 2, 1),
        "one person however its identifier is spelt",
    ),
    Hostile(
        "ids-with-unicode-hyphens",
        "{a}_202601_persons.csv",
        lambda a: (
            f"{PERSONS}\nAG-P1,{a},1941,F,75,true,APA\nAG\u2011P1,{a},1941,F,75,true,APA\nＡＧ－Ｐ１,{a},1941,F,75,true,APA\n".encode()
        ),
        Expect("partial", {"duplicate_row": 2}, 3, 1),
    ),
    Hostile(
        "semicolon-decimal-comma",
        "{a}_202601_care_managers.csv",
        lambda a: f"care_manager_id;agency_id;fte\nCM1;{a};0,5\nCM2;{a};1,0\n".encode("cp1252"),
        Expect("accepted", {}, 2, 2),
    ),
    Hostile(
        "pipe-delimited",
        "{a}_202601_persons.csv",
        lambda a: persons_csv(a, delimiter="|"),
        Expect("accepted", {}, 3, 3),
    ),
    # --- XLSX -----------------------------------------------------------------------------------------
    Hostile(
        "xlsx-corrupt",
        "{a}_202601_export.xlsx",
        lambda a: b"PK\x03\x04 not really a workbook",
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "xlsx-truncated",
        "{a}_202601_export.xlsx",
        lambda a: _truncated(_xlsx({"persons": _persons_frame(a)})),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "xlsx-csv-inside",
        "{a}_202601_export.xlsx",
        lambda a: persons_csv(a),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "xlsx-zip-bomb",
        "{a}_202601_export.xlsx",
        lambda a: _zip({"[Content_Types].xml": b"<Types/>", "xl/worksheets/sheet1.xml": b"0" * 50_000_000}),
        Expect("rejected", {"unsafe_archive": 0}),
    ),
    Hostile(
        "xlsx-xml-bomb",
        "{a}_202601_export.xlsx",
        lambda a: _zip(
            {
                "xl/workbook.xml": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                b'<!ENTITY lol2 "&lol;&lol;">]><x>&lol2;</x>'
            }
        ),
        Expect("rejected", {"unsafe_archive": 0}),
    ),
    Hostile(
        "xlsx-unknown-sheet",
        "{a}_202601_export.xlsx",
        lambda a: _xlsx({"Feuil1": _persons_frame(a)}),
        Expect("rejected", {"unknown_entity": 3}),
    ),
    Hostile(
        "xlsx-good-and-bad-sheet",
        "{a}_202601_export.xlsx",
        lambda a: _xlsx({"persons": _persons_frame(a), "Feuil2": pl.DataFrame({"x": [1, 2]})}),
        Expect("partial", {"unknown_entity": 2}, 5, 3),
    ),
    # --- Parquet ----------------------------------------------------------------------------------------
    Hostile(
        "parquet-corrupt",
        "{a}_202601_persons.parquet",
        lambda a: b"PAR1 broken PAR1",
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "parquet-truncated",
        "{a}_202601_persons.parquet",
        lambda a: _truncated(_parquet(_persons_frame(a).to_arrow())),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "parquet-bomb",
        "{a}_202601_persons.parquet",
        _parquet_bomb,
        Expect("rejected", {"unsafe_archive": 0}),
        "a decompression bomb",
    ),
    Hostile(
        "parquet-nested-column",
        "{a}_202601_persons.parquet",
        lambda a: _persons_parquet(a, extra=[{"deep": [[1, 2], [3]]}, None, {"deep": []}]),
        Expect("accepted", {}, 3, 3),
        "nested values become JSON text, and the column is not stored",
    ),
    Hostile(
        "parquet-binary-column",
        "{a}_202601_persons.parquet",
        lambda a: _persons_parquet(a, blob=[b"\x00\xff", b"ok", None]),
        Expect("partial", {"control_characters": 1}, 3, 2),
    ),
    Hostile(
        "parquet-repeated-name",
        "{a}_202601_persons.parquet",
        lambda a: _persons_parquet(a, Person_ID=["x", "y", "z"]),
        Expect("rejected", {"malformed_header": 0}),
    ),
    # --- JSON Lines --------------------------------------------------------------------------------------
    Hostile(
        "jsonl-deep-nesting",
        "{a}_202601_persons.jsonl",
        lambda a: _jsonl(a, b"[" * 200_000 + b"]" * 200_000),
        Expect("partial", {"malformed_json": 1}, 3, 2),
        "a recursion bomb",
    ),
    Hostile(
        "jsonl-deep-object",
        "{a}_202601_persons.jsonl",
        lambda a: _jsonl(a, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        Expect("partial", {"malformed_json": 1}, 3, 2),
    ),
    Hostile(
        "jsonl-invalid-utf8",
        "{a}_202601_persons.jsonl",
        lambda a: _jsonl(a, b'{"person_id": "P\xff9"}'),
        Expect("partial", {"invalid_encoding": 1}, 3, 2),
    ),
    Hostile(
        "jsonl-array",
        "{a}_202601_persons.jsonl",
        lambda a: _jsonl(a, b"[1, 2, 3]", b'"text"', b"null"),
        Expect("partial", {"malformed_json": 3}, 5, 2),
    ),
    Hostile(
        "jsonl-keys-collide",
        "{a}_202601_persons.jsonl",
        lambda a: _jsonl(a, b'{"Person_ID": "P8", "person_id": "P9"}'),
        Expect("partial", {"malformed_json": 1}, 3, 2),
    ),
    Hostile(
        "jsonl-binary",
        "{a}_202601_persons.jsonl",
        lambda a: _random(4096, 7),
        Expect("rejected", {"unreadable_file": 0}),
    ),
    Hostile(
        "jsonl-huge-value",
        "{a}_202601_persons.jsonl",
        lambda a: _jsonl(a, json.dumps({"person_id": "P9", "agency_id": a, "remark": "w" * BIG}).encode()),
        Expect("partial", {"field_too_long": 1}, 3, 2),
    ),
    Hostile("jsonl-empty", "{a}_202601_persons.jsonl", lambda a: b"\n\n", Expect("rejected", {"empty_file": 0})),
    # --- references ---------------------------------------------------------------------------------------
    Hostile(
        "orphan-episodes",
        "{a}_202601_episodes.csv",
        lambda a: (
            "episode_id,person_id,agency_id,cohort,referral_date,start_date,referral_source,payer,entry_situation\n"
            f"E1,NOBODY,{a},care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n"
        ).encode(),
        Expect("rejected", {"orphan_reference": 1}, 1, 0),
        "held back until its person arrives",
    ),
    # --- added by the review of issue 14 ------------------------------------------------------------
    Hostile(
        "semicolon-decimal-points",
        "{a}_202601_care_managers.csv",
        lambda a: f"care_manager_id;agency_id;fte\nCM1;{a};0.5\nCM2;{a};0.75\nCM3;{a};1.000\n".encode(),
        Expect("partial", {"invalid_type": 1}, 3, 2),
        "0.5 is a half, never 5; 1.000 could be 1 or 1000: refused, never guessed",
    ),
    Hostile(
        "dates-with-dots-dashes-and-times",
        "{a}_202601_events.csv",
        lambda a: (
            b"event_id;person_id;event_type;event_date\nV1;P1;fall;10.01.2025\nV2;P1;fall;10-01-2025\n"
            b"V3;P1;fall;10/01/2025 00:00\nV4;P1;fall;2025/01/10\n"
        ),
        Expect("rejected", {"orphan_reference": 4}, 4, 0),
        "every date read (the rows then wait for their person)",
    ),
)
