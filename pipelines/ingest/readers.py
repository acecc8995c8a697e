"""Find agency exports in the landing folder and read them into string-or-native frames.

A reader does not judge values: it only turns bytes into columns, keeping each row's line
number in the source file so that any later rejection can point at it. Types are the job of
``pipelines.ingest.coerce``.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.contract import Contract

SOURCE_ROW = "_source_row"
"""Column added to every frame read: the row's line number in its file (header = line 1)."""

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class ReadError(ValueError):
    """A file that cannot be read at all; the message names the file and never a value."""


@dataclass(frozen=True)
class LandingFile:
    path: Path
    relative_path: str
    agency_folder: str
    format: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ReadTable:
    entity: str
    frame: pl.DataFrame
    decimal_comma: bool


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover_landing_files(landing_dir: Path) -> list[LandingFile]:
    """Every file with a known extension under ``landing_dir/<agency>/``, in a stable order."""
    if not landing_dir.is_dir():
        return []
    files = []
    for path in sorted(p for p in landing_dir.rglob("*") if p.is_file()):
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None or path.name.startswith("."):
            continue
        relative = path.relative_to(landing_dir)
        agency = relative.parts[0] if len(relative.parts) > 1 else ""
        files.append(
            LandingFile(
                path=path,
                relative_path=relative.as_posix(),
                agency_folder=agency,
                format=fmt,
                sha256=sha256_of(path),
                size_bytes=path.stat().st_size,
            )
        )
    return files


def entity_from_name(name: str, contract: Contract) -> str | None:
    """The entity a file or sheet holds: its name, or the end of its stem after ``_``."""
    stem = name.lower().rsplit(".", 1)[0] if "." in name else name.lower()
    matches = [e for e in contract.entities if stem == e or stem.endswith(f"_{e}")]
    return max(matches, key=len) if matches else None


def decode_text(raw: bytes) -> str:
    """UTF-8 (with or without BOM) when it decodes, else Windows-1252, else Latin-1."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8")
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (";", ",", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _with_row_numbers(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(SOURCE_ROW, offset=2).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))


def read_landing_file(file: LandingFile, contract: Contract) -> list[ReadTable]:
    """Read one landing file into one table per entity it holds."""
    try:
        if file.format == "xlsx":
            # An all-empty optional column makes fastexcel warn; it is read as text, as it should be.
            logging.getLogger("fastexcel.types.dtype").setLevel(logging.ERROR)
            sheets = pl.read_excel(file.path, sheet_id=0, infer_schema_length=None, raise_if_empty=False)
            tables = []
            for sheet, frame in sheets.items():
                entity = entity_from_name(sheet, contract)
                if entity is None:
                    raise ReadError(f"{file.relative_path}: sheet {sheet!r} is not an entity of the contract")
                tables.append(ReadTable(entity, _with_row_numbers(frame), decimal_comma=False))
            return tables
        entity = entity_from_name(file.path.name, contract)
        if entity is None:
            raise ReadError(
                f"{file.relative_path}: cannot tell which entity this file holds; name it "
                f"<anything>_<entity>{file.path.suffix} with an entity among {sorted(contract.entities)}"
            )
        if file.format == "parquet":
            return [ReadTable(entity, _with_row_numbers(pl.read_parquet(file.path)), decimal_comma=False)]
        if file.format == "jsonl":
            return [ReadTable(entity, _with_row_numbers(pl.read_ndjson(file.path)), decimal_comma=False)]
        text = decode_text(file.path.read_bytes())
        delimiter = sniff_delimiter(text)
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            separator=delimiter,
            infer_schema=False,
            raise_if_empty=False,
        )
        frame = frame.rename({c: c.strip().lower() for c in frame.columns})
        return [ReadTable(entity, _with_row_numbers(frame), decimal_comma=delimiter != ",")]
    except ReadError:
        raise
    except Exception as exc:  # a library's own message may quote file content: keep only its type
        raise ReadError(f"{file.relative_path}: could not be read as {file.format} ({type(exc).__name__})") from None
