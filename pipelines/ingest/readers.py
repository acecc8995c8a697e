"""Find agency exports and read them into frames of raw values, never judging a value.

A reader turns bytes into columns and rows, keeping each row's line number (the header is
line 1) so that any rejection can point at it. Rows it cannot even split into fields
(ragged rows, bad bytes, broken JSON) come back as row rejections; a file it cannot read at
all comes back as a file problem. Types and contract checks are the job of
``pipelines.ingest.validate``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.ingest.config import ReadOptions
from pipelines.ingest.reasons import Reason

SOURCE_ROW = "_source_row"
"""Column added to every frame read: the row's line in its file (CSV, XLSX: header = 1)."""

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
PERIOD = re.compile(r"(?:^|_)(\d{6}|\d{4}-\d{2})(?:_|$)")
CHUNK = 1 << 24
XLSX_EXPANSION_CAP = 200
"""An XLSX whose parts expand more than this many times their compressed size is refused."""


class FileProblem(Exception):
    """The whole file cannot be used. The message names the file, never a value in it."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LandingFile:
    path: Path
    relative_path: str
    agency_folder: str
    format: str
    sha256: str
    size_bytes: int

    @property
    def period(self) -> str:
        """The export period named in the file (``..._202606_...``), else the file's stem."""
        match = PERIOD.search(self.path.stem)
        return match.group(1).replace("-", "") if match else self.path.stem


@dataclass(frozen=True)
class RowReject:
    line: int | None
    reason: Reason
    column: str | None


@dataclass
class ReadTable:
    """One entity read from one file (a CSV, a Parquet file or one XLSX sheet)."""

    entity: str | None
    name: str
    frame: pl.DataFrame
    decimal_comma: bool = False
    rejects: list[RowReject] = field(default_factory=list)
    line_numbers_exact: bool = True
    raw_lines: Callable[[list[int]], dict[int, str]] | None = None

    @property
    def rows_in(self) -> int:
        return self.frame.height + len(self.rejects)


@dataclass
class FileRead:
    tables: list[ReadTable]
    encoding: str | None = None
    delimiter: str | None = None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: Path, root: Path, agency: str | None = None) -> LandingFile | None:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None or path.name.startswith("."):
        return None
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.name
    return LandingFile(
        path=path,
        relative_path=relative,
        agency_folder=agency if agency is not None else path.parent.name,
        format=fmt,
        sha256=sha256_of(path),
        size_bytes=path.stat().st_size,
    )


def discover_landing_files(landing_dir: Path) -> list[LandingFile]:
    """Every file with a known extension under ``landing_dir/<agency>/``, in a stable order."""
    if not landing_dir.is_dir():
        return []
    files = []
    for path in sorted(p for p in landing_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(landing_dir)
        agency = relative.parts[0] if len(relative.parts) > 1 else ""
        described = describe_file(path, landing_dir, agency)
        if described is not None:
            files.append(described)
    return files


def entity_from_name(name: str, contract: Contract) -> str | None:
    """The entity a file or sheet holds: its name, or the end of its stem after ``_``."""
    stem = name.lower().rsplit(".", 1)[0] if "." in name else name.lower()
    stem = stem.strip()
    matches = [e for e in contract.entities if stem == e or stem.endswith(f"_{e}")]
    return max(matches, key=len) if matches else None


def normalise_column(name: str) -> str:
    return re.sub(r"\s+", "_", str(name).strip().lower())


# --- encodings -------------------------------------------------------------------------------

_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def detect_encoding(path: Path) -> str:
    """``utf-8`` when the bytes decode as UTF-8 (or mostly do), else ``cp1252``, else ``latin-1``.

    A UTF-8 file with a few invalid bytes (at most one stray byte for two valid multi-byte
    characters) stays UTF-8: its bad rows are quarantined rather than the whole file being
    misread as Windows-1252.
    """
    # Most files are valid UTF-8: one decoding pass (in C) settles it; bytes are counted only if not.
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                decoder.decode(block)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    sequences = 0
    sequence_bytes = 0
    high_bytes = 0
    cp1252_ok = True
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            found = _UTF8_SEQUENCE.findall(block)
            sequences += len(found)
            sequence_bytes += sum(len(f) for f in found)
            high_bytes += len(_HIGH_BYTE.findall(block))
            if cp1252_ok:
                try:
                    block.decode("cp1252")
                except UnicodeDecodeError:
                    cp1252_ok = False
    stray = high_bytes - sequence_bytes
    if sequences >= 3 and stray * 2 <= sequences:
        return "utf-8"
    return "cp1252" if cp1252_ok else "latin-1"


def decode_text(raw: bytes) -> str:
    """Decode a small byte string the same way files are decoded (used for headers and tests)."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@contextmanager
def utf8_copy(path: Path, encoding: str) -> Iterator[Path]:
    """The file itself when it is UTF-8, else a transcoded temporary copy (the BOM dropped)."""
    with path.open("rb") as handle:
        has_bom = handle.read(3) == codecs.BOM_UTF8
    if encoding == "utf-8" and not has_bom:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="parcours-") as folder:
        target = Path(folder) / "utf8.csv"
        source_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
        errors = "surrogateescape" if encoding == "utf-8" else "strict"
        decoder = codecs.getincrementaldecoder(source_encoding)(errors=errors)
        with path.open("rb") as source, target.open("wb") as out:
            for block in iter(lambda: source.read(CHUNK), b""):
                out.write(decoder.decode(block).encode("utf-8", errors="surrogateescape"))
            out.write(decoder.decode(b"", final=True).encode("utf-8", errors="surrogateescape"))
        yield target


# --- CSV -------------------------------------------------------------------------------------


def _first_line(path: Path) -> str:
    with path.open("rb") as handle:
        line = handle.readline(1 << 20)
    return decode_text(line).rstrip("\r\n")


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (";", ",", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _line_offsets(path: Path) -> np.ndarray:
    """Start offset of every physical line."""
    starts = [np.zeros(1, dtype=np.int64)]
    position = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            array = np.frombuffer(block, dtype=np.uint8)
            starts.append(np.flatnonzero(array == 10).astype(np.int64) + position + 1)
            position += len(block)
    offsets = np.concatenate(starts)
    if offsets[-1] >= position:  # a final newline does not start a line
        offsets = offsets[:-1]
    return offsets


def _blank_lines(path: Path, offsets: np.ndarray) -> set[int]:
    size = path.stat().st_size
    ends = np.append(offsets[1:], size)
    lengths = ends - offsets
    candidates = np.flatnonzero(lengths <= 2)
    blank: set[int] = set()
    if candidates.size:
        with path.open("rb") as handle:
            for index in candidates:
                handle.seek(int(offsets[index]))
                if handle.read(int(lengths[index])).strip(b"\r\n") == b"":
                    blank.add(int(index) + 1)
    return blank


def _line_reader(path: Path, offsets: np.ndarray, encoding: str) -> Callable[[list[int]], dict[int, str]]:
    """Raw lines of the original file, decoded one by one.

    The newline byte is the same in UTF-8, Windows-1252 and Latin-1, so line offsets found
    in the original file are the lines the (possibly transcoded) reader numbered.
    """

    def read(lines: list[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        size = path.stat().st_size
        with path.open("rb") as handle:
            for line in sorted(set(lines)):
                if line < 1 or line > offsets.shape[0]:
                    continue
                start = int(offsets[line - 1])
                end = int(offsets[line]) if line < offsets.shape[0] else size
                handle.seek(start)
                text = handle.read(min(end - start, 1 << 16)).decode(encoding, "replace")
                found[line] = text.lstrip("\ufeff").rstrip("\r\n")
        return found

    return read


_DUCKDB_REASONS = {
    "INVALID ENCODING": Reason.INVALID_ENCODING,
    "INVALID UNICODE": Reason.INVALID_ENCODING,
    "LINE SIZE OVER MAXIMUM": Reason.FIELD_TOO_LONG,
}


def read_csv(file: LandingFile, options: ReadOptions) -> FileRead:
    if file.size_bytes == 0:
        raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: the file is empty")
    encoding = options.encoding or detect_encoding(file.path)
    with utf8_copy(file.path, encoding) as text_path:
        header_line = _first_line(text_path)
        if not header_line.strip():
            raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: the first line is empty: no header")
        delimiter = options.delimiter or sniff_delimiter(header_line)
        header = next(csv.reader([header_line], delimiter=delimiter))
        columns = [normalise_column(c) for c in header]
        if any(not c for c in columns) or len(set(columns)) != len(columns):
            raise FileProblem(
                Reason.MALFORMED_HEADER, f"{file.relative_path}: the header has an empty or repeated column name"
            )
        try:
            frame, rejects = warehouse.read_csv_as_text(text_path, delimiter, columns)
        except Exception as exc:
            raise FileProblem(
                Reason.UNREADABLE_FILE, f"{file.relative_path}: not readable as CSV ({type(exc).__name__})"
            ) from None
        offsets = _line_offsets(file.path)
        row_rejects = [
            RowReject(int(line), _DUCKDB_REASONS.get(str(kind), Reason.MALFORMED_ROW), column)
            for line, kind, column in rejects.iter_rows()
        ]
        rejected = {r.line for r in row_rejects if r.line is not None}
        skipped = np.asarray(sorted(_blank_lines(file.path, offsets) | rejected), dtype=np.int64)
        data_lines = np.setdiff1d(np.arange(2, offsets.shape[0] + 1, dtype=np.int64), skipped, assume_unique=True)
        exact = data_lines.shape[0] == frame.height
        if exact:
            frame = frame.with_columns(pl.Series(SOURCE_ROW, data_lines))
        else:  # multi-line quoted fields: physical lines no longer match records
            frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(SOURCE_ROW))
        table = ReadTable(
            entity=None,
            name=file.path.name,
            frame=frame,
            decimal_comma=options.decimal_comma if options.decimal_comma is not None else delimiter != ",",
            rejects=row_rejects,
            line_numbers_exact=exact,
            raw_lines=_line_reader(file.path, offsets, encoding),
        )
    return FileRead([table], encoding=encoding, delimiter=delimiter)


# --- XLSX, Parquet, JSON Lines ----------------------------------------------------------------


def _row_json_reader(frame: pl.DataFrame) -> Callable[[list[int]], dict[int, str]]:
    def read(lines: list[int]) -> dict[int, str]:
        rows = frame.filter(pl.col(SOURCE_ROW).is_in(lines))
        found = {}
        for row in rows.iter_rows(named=True):
            line = row.pop(SOURCE_ROW)
            found[int(line)] = json.dumps(row, ensure_ascii=False, default=str)
        return found

    return read


def check_xlsx_is_safe(file: LandingFile, cap_bytes: int) -> None:
    try:
        with zipfile.ZipFile(file.path) as archive:
            infos = archive.infolist()
            expanded = sum(i.file_size for i in infos)
            compressed = sum(i.compress_size for i in infos) or 1
            if expanded > cap_bytes or expanded / compressed > XLSX_EXPANSION_CAP:
                raise FileProblem(
                    Reason.UNSAFE_ARCHIVE,
                    f"{file.relative_path}: the workbook would expand to {expanded:,} bytes "
                    f"({expanded / compressed:.0f} times its size); refused as a possible zip bomb",
                )
            for info in infos:
                if info.filename.endswith(".xml"):
                    with archive.open(info) as part:
                        head = part.read(4096)
                    if b"<!ENTITY" in head or b"<!DOCTYPE" in head:
                        raise FileProblem(
                            Reason.UNSAFE_ARCHIVE,
                            f"{file.relative_path}: the workbook declares XML entities; refused as a possible XML bomb",
                        )
    except zipfile.BadZipFile:
        raise FileProblem(Reason.UNREADABLE_FILE, f"{file.relative_path}: not a valid XLSX workbook") from None


def read_xlsx(file: LandingFile, options: ReadOptions, contract: Contract) -> FileRead:
    check_xlsx_is_safe(file, options.max_file_bytes)
    # An all-empty optional column makes fastexcel warn; it is read as text, as it should be.
    logging.getLogger("fastexcel.types.dtype").setLevel(logging.ERROR)
    try:
        sheets = pl.read_excel(
            file.path,
            sheet_id=0,
            infer_schema_length=None,
            raise_if_empty=False,
            drop_empty_rows=False,
            drop_empty_cols=False,
        )
    except Exception as exc:
        raise FileProblem(
            Reason.UNREADABLE_FILE, f"{file.relative_path}: not readable as XLSX ({type(exc).__name__})"
        ) from None
    tables = []
    for sheet, frame in sheets.items():
        columns = [normalise_column(c) for c in frame.columns]
        if len(set(columns)) != len(columns):
            raise FileProblem(
                Reason.MALFORMED_HEADER, f"{file.relative_path}: sheet {sheet!r} has a repeated column name"
            )
        frame = frame.rename(dict(zip(frame.columns, columns, strict=True)))
        frame = frame.with_row_index(SOURCE_ROW, offset=2).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
        data_columns = [c for c in frame.columns if c != SOURCE_ROW]
        if data_columns:  # a blank spreadsheet row is not a record
            frame = frame.filter(~pl.all_horizontal(pl.col(data_columns).is_null()))
        entity = options.sheet_entities.get(sheet) or entity_from_name(sheet, contract)
        tables.append(ReadTable(entity, sheet, frame, raw_lines=_row_json_reader(frame)))
    return FileRead(tables)


def read_parquet(file: LandingFile) -> FileRead:
    try:
        frame = pl.read_parquet(file.path)
    except Exception as exc:
        raise FileProblem(
            Reason.UNREADABLE_FILE, f"{file.relative_path}: not readable as Parquet ({type(exc).__name__})"
        ) from None
    frame = frame.rename({c: normalise_column(c) for c in frame.columns})
    frame = frame.with_row_index(SOURCE_ROW, offset=1).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
    return FileRead([ReadTable(None, file.path.name, frame, raw_lines=_row_json_reader(frame))])


def _json_text(value: object) -> str | None:
    """JSON values as the text a CSV would hold; nested values kept as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).lower() if isinstance(value, bool) else str(value)


def read_jsonl(file: LandingFile, options: ReadOptions) -> FileRead:
    if file.size_bytes == 0:
        raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: the file is empty")
    encoding = options.encoding or detect_encoding(file.path)
    records: list[dict[str, object]] = []
    lines: list[int] = []
    rejects: list[RowReject] = []
    raw: dict[int, str] = {}
    with file.path.open("r", encoding="utf-8-sig" if encoding == "utf-8" else encoding, errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, dict):
                rejects.append(RowReject(number, Reason.MALFORMED_JSON, None))
                raw[number] = text[: 1 << 16]
                continue
            records.append({normalise_column(k): _json_text(v) for k, v in value.items()})
            lines.append(number)
    if not records and not rejects:
        raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: no JSON rows")
    columns = list(dict.fromkeys(k for r in records for k in r))
    frame = pl.DataFrame(
        {c: [r.get(c) for r in records] for c in columns}, schema=dict.fromkeys(columns, pl.String)
    ).with_columns(pl.Series(SOURCE_ROW, lines, dtype=pl.Int64))
    json_rows = _row_json_reader(frame)

    def raw_lines(wanted: list[int]) -> dict[int, str]:
        return {**json_rows(wanted), **{n: raw[n] for n in wanted if n in raw}}

    return FileRead([ReadTable(None, file.path.name, frame, rejects=rejects, raw_lines=raw_lines)], encoding=encoding)


def read_landing_file(file: LandingFile, contract: Contract, options: ReadOptions) -> FileRead:
    """Read one landing file; raise ``FileProblem`` when it cannot be used at all."""
    if file.size_bytes > options.max_file_bytes:
        raise FileProblem(
            Reason.FILE_TOO_LARGE,
            f"{file.relative_path}: {file.size_bytes / 1e6:,.0f} MB is over the "
            f"{options.max_file_bytes / 1e6:,.0f} MB cap (PARCOURS_MAX_FILE_MB)",
        )
    if file.format == "xlsx":
        return read_xlsx(file, options, contract)
    if file.format == "parquet":
        result = read_parquet(file)
    elif file.format == "jsonl":
        result = read_jsonl(file, options)
    else:
        result = read_csv(file, options)
    entity = entity_from_name(file.path.name, contract)
    for table in result.tables:
        table.entity = entity
    return result
