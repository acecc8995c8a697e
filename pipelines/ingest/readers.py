"""Find agency exports and read them into engine tables of raw values, never judging a value.

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
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import polars as pl
from polars.exceptions import PanicException

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.ingest.config import ReadOptions
from pipelines.ingest.privacy import name_holds_identifier
from pipelines.ingest.reasons import Reason
from pipelines.ingest.source import POSITION, SOURCE_ROW, SourceTable, describe, source_from_frame
from pipelines.warehouse import Connection

LIBRARY_FAILURES: tuple[type[BaseException], ...] = (Exception, PanicException)
"""What reading a hostile file may raise: any error, and a panic of a Rust library (polars' Parquet reader,
fastexcel), which Python sees as a BaseException: such a file is unreadable, not the end of the run."""

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
UNSUPPORTED = "unsupported"
"""The format of a file in an agency folder that no reader takes (reported, never silently skipped)."""
UNHASHABLE = "unhashable"
"""The format of a file that could not even be read to hash it (permissions, a vanished file)."""
NOT_REGULAR = "not_regular"
"""The format of a symbolic link, a named pipe or a device: never opened, never followed."""
IDENTIFIER_NAMED = "identifier_named"
"""The format of a file whose name holds a direct identifier: never read, known by a masked name."""
IGNORED_NAMES = frozenset({"agencies.yaml", "agencies.yml", "thumbs.db", "desktop.ini"})
PERIOD = re.compile(r"(?:^|_)(\d{6}|\d{4}-\d{2})(?:_|$)")
CHUNK = 1 << 24
XLSX_EXPANSION_CAP = 200
"""An XLSX or Parquet file whose content expands more than this many times its stored size is refused."""
MAX_HEADER_BYTES = 1 << 16
"""A header line longer than this is not a header (a binary file, or a file with no line breaks)."""
BINARY_SAMPLE = 8192
BINARY_CONTROL_SHARE = 0.05
"""Above this share of control bytes (NUL and the like) in the first 8 KB, a text file is binary."""
MAGIC_NUMBERS = {
    b"PK\x03\x04": "a ZIP archive (an XLSX workbook?)",
    b"PAR1": "a Parquet file",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel or Word file (.xls/.doc)",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
}
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


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
        """The export period named in the file (``..._202606_...``), else the file's stem (as reported:
        masked when the name holds an identifier)."""
        stem = PurePosixPath(self.relative_path).stem
        match = PERIOD.search(stem)
        return match.group(1).replace("-", "") if match else stem


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
    source: SourceTable | None
    """The rows read, in the engine; None for a sheet that was not read."""
    decimal_comma: bool = False
    rejects: list[RowReject] = field(default_factory=list)
    line_numbers_exact: bool = True
    raw_lines: Callable[[list[int]], dict[int, str]] | None = None
    identifier_in_name: bool = False
    """An XLSX sheet whose name holds a direct identifier: not read, ``name`` is its position."""

    @property
    def rows_in(self) -> int:
        return (self.source.height if self.source is not None else 0) + len(self.rejects)

    @property
    def frame(self) -> pl.DataFrame:
        """The rows read as a frame (tests and small tables only)."""
        return self.source.frame() if self.source is not None else pl.DataFrame()


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


def describe_file(
    path: Path, root: Path, agency: str | None = None, include_unsupported: bool = True
) -> LandingFile | None:
    """A landing file, hashed. A file in a format no reader takes is described as ``unsupported``
    (so that it gets a report) unless ``include_unsupported`` is false; hidden files and the
    agencies' configuration are never landing files."""
    if path.name.startswith((".", "~$")) or path.name.lower() in IGNORED_NAMES:
        return None
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None and not include_unsupported:
        return None
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.name
    if path.is_symlink() or not path.is_file():
        # A link may point anywhere (another agency's folder, the key file): never followed; a named
        # pipe would block the run if opened. Known by its path, reported at every run.
        sha256, size, fmt = hashlib.sha256(f"not-regular:{relative}".encode()).hexdigest(), 0, NOT_REGULAR
    else:
        try:
            sha256, size = sha256_of(path), path.stat().st_size
        except OSError:
            # Known by its path until it can be read: the next run tries it again.
            sha256, size, fmt = hashlib.sha256(f"unhashable:{relative}".encode()).hexdigest(), 0, UNHASHABLE
    if name_holds_identifier(path.name):
        # Never stored nor printed: the file is known by its folder and its content's hash.
        relative = str(PurePosixPath(relative).with_name(f"masked-name-{sha256[:16]}{path.suffix.lower()}"))
        fmt = IDENTIFIER_NAMED
    return LandingFile(
        path=path,
        relative_path=relative,
        agency_folder=agency if agency is not None else path.parent.name,
        format=fmt or UNSUPPORTED,
        sha256=sha256,
        size_bytes=size,
    )


def discover_landing_files(landing_dir: Path) -> list[LandingFile]:
    """Every file under ``landing_dir/<agency>/``, in a stable order; files in a format no reader
    takes are included (they are reported), except at the top of the landing folder."""
    if not landing_dir.is_dir():
        return []
    files = []
    # Links (to files or folders) and special files are listed too, to be reported: never followed.
    for path in sorted(p for p in landing_dir.rglob("*") if p.is_symlink() or not p.is_dir()):
        relative = path.relative_to(landing_dir)
        agency = relative.parts[0] if len(relative.parts) > 1 else ""
        if any(part.startswith(".") for part in relative.parts[:-1]):
            continue
        if not agency and path.is_symlink() and path.is_dir():  # a linked agency folder: never skipped in silence
            agency = path.name
        described = describe_file(path, landing_dir, agency, include_unsupported=bool(agency))
        if described is not None:
            files.append(described)
    return files


def entity_from_name(name: str, contract: Contract) -> str | None:
    """The entity a file or sheet holds: its name, or the end of its stem after ``_``."""
    stem = name.lower().rsplit(".", 1)[0] if "." in name else name.lower()
    stem = stem.strip()
    matches = [e for e in contract.entities if stem == e or stem.endswith(f"_{e}")]
    return max(matches, key=len) if matches else None


_LEADING_MARKS = re.compile("^(?:\ufeff|\u00ef\u00bb\u00bf|\u00ef\u00bb\u00bf)+")
"""A byte-order mark read as a character, or as Windows-1252 or Latin-1 text (``ï»¿``)."""


def normalise_column(name: str) -> str:
    """A header as the contract spells its fields: ``Département`` and ``person-id`` are
    ``departement`` and ``person_id`` (accents dropped, any run of other characters one ``_``, none
    at the ends: no header can pass for a lineage column such as ``_source_row``). A header that
    holds an identifier (an e-mail) or a control character is kept as it is, to be refused."""
    if name_holds_identifier(str(name)) or _CONTROL_OR_INVALID.search(str(name)):  # evidence kept for refusal
        return _LEADING_MARKS.sub("", str(name)).strip().lower()
    text = unicodedata.normalize("NFKD", _LEADING_MARKS.sub("", str(name)))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return re.sub(r"[\W_]+", "_", text).strip("_")


# --- encodings -------------------------------------------------------------------------------

_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def detect_encoding(path: Path) -> str:
    """``utf-8`` when the file starts with a byte-order mark or its bytes decode as UTF-8 (or
    mostly do), else ``cp1252``.

    A UTF-8 file with a few invalid bytes (at most one stray byte for two valid multi-byte
    characters) stays UTF-8, and a byte-order mark always declares UTF-8: bad rows are then
    quarantined (``invalid_encoding``) rather than the whole file being misread as
    Windows-1252. Likewise the few bytes Windows-1252 leaves undefined only cost their rows.
    Latin-1 is read only when an agency's configuration says so.
    """
    with path.open("rb") as handle:
        if handle.read(3) == codecs.BOM_UTF8:
            return "utf-8"
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
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            found = _UTF8_SEQUENCE.findall(block)
            sequences += len(found)
            sequence_bytes += sum(len(f) for f in found)
            high_bytes += len(_HIGH_BYTE.findall(block))
    stray = high_bytes - sequence_bytes
    if sequences >= 3 and stray * 2 <= sequences:
        return "utf-8"
    return "cp1252"


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
    """The file itself when it is UTF-8, else a transcoded temporary copy (the BOM dropped).

    Bytes invalid in ``encoding`` are carried over as they are (``surrogateescape``): they are
    then invalid UTF-8 in the copy, and the CSV reader quarantines their rows alone."""
    with path.open("rb") as handle:
        has_bom = handle.read(3) == codecs.BOM_UTF8
    if encoding == "utf-8" and not has_bom:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="parcours-") as folder:
        target = Path(folder) / "utf8.csv"
        source_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
        decoder = codecs.getincrementaldecoder(source_encoding)(errors="surrogateescape")
        with path.open("rb") as source, target.open("wb") as out:
            for block in iter(lambda: source.read(CHUNK), b""):
                out.write(decoder.decode(block).encode("utf-8", errors="surrogateescape"))
            out.write(decoder.decode(b"", final=True).encode("utf-8", errors="surrogateescape"))
        yield target


# --- CSV -------------------------------------------------------------------------------------


def _first_line(path: Path) -> str | None:
    """The header line, or None when it is longer than ``MAX_HEADER_BYTES``."""
    with path.open("rb") as handle:
        line = handle.readline(MAX_HEADER_BYTES + 1)
    if len(line) > MAX_HEADER_BYTES:
        return None
    return decode_text(line).rstrip("\r\n")


def check_is_text(file: LandingFile) -> None:
    """Refuse a "CSV" that is really binary (an image, an archive, random bytes) or UTF-16 text."""
    with file.path.open("rb") as handle:
        sample = handle.read(BINARY_SAMPLE)
    if sample.startswith(UTF16_BOMS):
        raise FileProblem(
            Reason.UNREADABLE_FILE,
            f"{file.relative_path}: UTF-16 or UTF-32 text; export it again as UTF-8 or Windows-1252 CSV",
        )
    for magic, kind in MAGIC_NUMBERS.items():
        if sample.startswith(magic):
            raise FileProblem(Reason.UNREADABLE_FILE, f"{file.relative_path}: {kind}, not CSV text")
    controls = sum(sample.count(bytes([b])) for b in (*range(0, 9), 11, *range(14, 32), 127))
    if len(sample) >= 64 and controls > BINARY_CONTROL_SHARE * len(sample):
        raise FileProblem(Reason.UNREADABLE_FILE, f"{file.relative_path}: binary content (control bytes), not CSV text")


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


def _record_starts(path: Path, offsets: np.ndarray) -> np.ndarray:
    """Physical lines (from 1) where a record starts: no quote is left open before them. A quoted
    field with line breaks spans several lines; its record is known by its first."""
    quotes_per_line = np.zeros(offsets.shape[0], dtype=np.int64)
    position = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            quotes = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord('"')) + position
            if quotes.size:
                lines = np.searchsorted(offsets, quotes, side="right") - 1
                quotes_per_line += np.bincount(lines, minlength=offsets.shape[0])
            position += len(block)
    open_before = np.concatenate([[0], np.cumsum(quotes_per_line)[:-1]]) % 2
    return np.flatnonzero(open_before == 0).astype(np.int64) + 1


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


def line_reader(path: Path, encoding: str, offsets: np.ndarray | None = None) -> Callable[[list[int]], dict[int, str]]:
    """Raw lines of the original file, decoded one by one (line offsets found when first needed, when
    not given: a file's offsets are not kept in memory for the rows that will never be quoted).

    The newline byte is the same in UTF-8, Windows-1252 and Latin-1, so line offsets found
    in the original file are the lines the (possibly transcoded) reader numbered.
    """
    known: list[np.ndarray] = [] if offsets is None else [offsets]

    def read(lines: list[int]) -> dict[int, str]:
        if not lines:
            return {}
        if not known:
            known.append(_line_offsets(path))
        offsets = known[0]
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


_CONTROL_OR_INVALID = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff\ufffd]")

_DUCKDB_REASONS = {
    "INVALID ENCODING": Reason.INVALID_ENCODING,
    "INVALID UNICODE": Reason.INVALID_ENCODING,
    "LINE SIZE OVER MAXIMUM": Reason.FIELD_TOO_LONG,
}


def _read_fields(con: Connection, table: str, path: Path, delimiter: str, width: int) -> pl.DataFrame:
    """DuckDB's reader into ``table``; a file mixing Windows and Unix line ends (two exports pasted
    together) is read again from a copy with Unix line ends only (same lines, same numbers)."""
    try:
        return warehouse.read_csv_into(con, table, path, delimiter, width)
    except warehouse.ENGINE_FAILURES:
        raise
    except Exception:
        with path.open("rb") as handle:
            if b"\r\n" not in handle.read(CHUNK):
                raise
    with tempfile.TemporaryDirectory(prefix="parcours-") as folder:
        target = Path(folder) / "lf.csv"
        with path.open("rb") as source, target.open("wb") as out:
            carry = b""
            for block in iter(lambda: source.read(CHUNK), b""):
                block = carry + block
                carry = b"\r" if block.endswith(b"\r") else b""
                out.write(block[: len(block) - len(carry)].replace(b"\r\n", b"\n"))
            out.write(carry)
        return warehouse.read_csv_into(con, table, target, delimiter, width)


def read_csv(file: LandingFile, options: ReadOptions, con: Connection | None = None) -> FileRead:
    con = con if con is not None else warehouse.scratch_connection()
    if file.size_bytes == 0:
        raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: the file is empty")
    check_is_text(file)
    encoding = options.encoding or detect_encoding(file.path)
    with utf8_copy(file.path, encoding) as text_path:
        header_line = _first_line(text_path)
        if header_line is None:
            raise FileProblem(
                Reason.MALFORMED_HEADER,
                f"{file.relative_path}: no line break in the first {MAX_HEADER_BYTES:,} bytes: no header line",
            )
        if not header_line.strip():
            raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: the first line is empty: no header")
        if header_line.count('"') % 2:
            # An open quote would swallow the lines after it into the header.
            raise FileProblem(Reason.MALFORMED_HEADER, f"{file.relative_path}: the header has an unclosed quote")
        delimiter = options.delimiter or sniff_delimiter(header_line)
        try:
            header = next(csv.reader([header_line], delimiter=delimiter), [])
        except csv.Error:
            raise FileProblem(
                Reason.MALFORMED_HEADER, f"{file.relative_path}: the header line cannot be split into columns"
            ) from None
        columns = [normalise_column(c) for c in header]
        if not columns or any(not c for c in columns) or len(set(columns)) != len(columns):
            raise FileProblem(
                Reason.MALFORMED_HEADER, f"{file.relative_path}: the header has an empty or repeated column name"
            )
        if any(_CONTROL_OR_INVALID.search(c) for c in columns):
            raise FileProblem(
                Reason.MALFORMED_HEADER,
                f"{file.relative_path}: the header holds control characters or bytes invalid in {encoding}",
            )
        try:
            rejects = _read_fields(con, "src", text_path, delimiter, len(columns))
        except warehouse.ENGINE_FAILURES:
            raise  # the engine, not the file (a file beside it broke it, or memory ran short): tried again
        except Exception as exc:
            raise FileProblem(
                Reason.UNREADABLE_FILE, f"{file.relative_path}: not readable as CSV ({type(exc).__name__})"
            ) from None
        offsets = _line_offsets(file.path)
        row_rejects = [
            RowReject(
                int(line),
                _DUCKDB_REASONS.get(str(kind), Reason.MALFORMED_ROW),
                columns[int(index)] if index not in (None, "") and int(index) < len(columns) else None,
            )
            for line, kind, index in rejects.iter_rows()
        ]
        rejected = {r.line for r in row_rejects if r.line is not None}
        height = int(con.execute("select count(*) from src").fetchall()[0][0])
        skipped = np.asarray(sorted(_blank_lines(file.path, offsets) | rejected), dtype=np.int64)
        data_lines = np.setdiff1d(np.arange(2, offsets.shape[0] + 1, dtype=np.int64), skipped, assume_unique=True)
        exact = data_lines.shape[0] == height
        if not exact:  # multi-line quoted fields: number records by the line they start on
            starts = _record_starts(file.path, offsets)
            data_lines = np.setdiff1d(starts[starts >= 2], skipped, assume_unique=True)
            exact = data_lines.shape[0] == height
        if exact and (height == 0 or (data_lines[0] == 2 and data_lines[-1] == height + 1)):
            rows_sql = f"(select *, rowid as {POSITION}, rowid + 2 as {SOURCE_ROW} from src)"
        elif exact:  # blank or refused lines in between: each row's own line, paired by position
            con.register("_incoming_lines", pl.DataFrame({SOURCE_ROW: data_lines}))
            try:
                con.execute("create or replace temp table src_lines as select * from _incoming_lines")
            finally:
                con.unregister("_incoming_lines")
            rows_sql = f"(select * from (select *, rowid as {POSITION} from src) positional join src_lines)"
        else:  # records and lines could not be matched: no row gets a line rather than a wrong one
            rows_sql = f"(select *, rowid as {POSITION}, cast(null as bigint) as {SOURCE_ROW} from src)"
        del offsets, data_lines, skipped
        table = ReadTable(
            entity=None,
            name=file.path.name,
            source=describe(con, "src", columns, rows_sql),
            decimal_comma=options.decimal_comma if options.decimal_comma is not None else delimiter != ",",
            rejects=row_rejects,
            line_numbers_exact=exact,
            raw_lines=line_reader(file.path, encoding),
        )
    return FileRead([table], encoding=encoding, delimiter=delimiter)


# --- XLSX, Parquet, JSON Lines ----------------------------------------------------------------


def _row_json_reader(source: SourceTable) -> Callable[[list[int]], dict[int, str]]:
    """A row as JSON (a format with no text lines), read back from the engine while it holds the rows."""

    def read(lines: list[int]) -> dict[int, str]:
        if not lines:
            return {}
        named = ", ".join(f'"c{i}" as "c{i}"' for i in range(len(source.columns)))
        rows = warehouse.query(
            source.con,
            f"select {named}{', ' if named else ''}{SOURCE_ROW} from {source.rows_sql} "
            f"where list_contains($lines, {SOURCE_ROW}) order by {POSITION}",
            {"lines": lines},
        ).rename({f"c{i}": c for i, c in enumerate(source.columns)})
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


def read_xlsx(file: LandingFile, options: ReadOptions, contract: Contract, con: Connection | None = None) -> FileRead:
    con = con if con is not None else warehouse.scratch_connection()
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
    except MemoryError:
        raise  # the machine's memory (other files take some too), not the file: tried again
    except LIBRARY_FAILURES as exc:
        raise FileProblem(
            Reason.UNREADABLE_FILE, f"{file.relative_path}: not readable as XLSX ({type(exc).__name__})"
        ) from None
    tables: list[ReadTable] = []
    for sheet, frame in sheets.items():
        columns = [normalise_column(c) for c in frame.columns]
        if any(not c for c in columns) or len(set(columns)) != len(columns):
            raise FileProblem(
                Reason.MALFORMED_HEADER, f"{file.relative_path}: a sheet has an empty or repeated column name"
            )
        frame = _plain_columns(frame.rename(dict(zip(frame.columns, columns, strict=True))))
        frame = frame.with_row_index(SOURCE_ROW, offset=2).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
        data_columns = [c for c in frame.columns if c != SOURCE_ROW]
        if data_columns:  # a blank spreadsheet row is not a record
            frame = frame.filter(~pl.all_horizontal(pl.col(data_columns).is_null()))
        if name_holds_identifier(sheet):  # known by its position only, and refused
            tables.append(ReadTable(None, f"sheet {len(tables) + 1}", None, identifier_in_name=True))
            continue
        entity = options.sheet_entities.get(sheet) or entity_from_name(sheet, contract)
        source = source_from_frame(con, frame, f"src{len(tables)}")
        tables.append(ReadTable(entity, sheet, source, raw_lines=_row_json_reader(source)))
    return FileRead(tables)


def check_parquet_is_safe(file: LandingFile, cap_bytes: int) -> None:
    """Refuse a Parquet file whose pages would decompress past the cap or far beyond its size."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(file.path).metadata
    except MemoryError:
        raise  # the machine's memory (other files take some too), not the file: tried again
    except LIBRARY_FAILURES as exc:
        raise FileProblem(
            Reason.UNREADABLE_FILE, f"{file.relative_path}: not readable as Parquet ({type(exc).__name__})"
        ) from None
    expanded = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    # Each value of a decoded column takes at least a few bytes whatever its encoding.
    in_memory = expanded + 8 * metadata.num_rows * max(metadata.num_columns, 1)
    if in_memory > cap_bytes or expanded > XLSX_EXPANSION_CAP * max(file.size_bytes, 1):
        raise FileProblem(
            Reason.UNSAFE_ARCHIVE,
            f"{file.relative_path}: the Parquet file would expand to about {in_memory:,} bytes in memory "
            f"({expanded / max(file.size_bytes, 1):.0f} times its size); refused as a possible decompression bomb",
        )


def _as_text(series: pl.Series) -> pl.Series:
    """A column of a type no contract field has (nested, binary, times...) as text, nested values as JSON."""
    values = [
        None
        if v is None
        else v.decode("utf-8", "replace")
        if isinstance(v, bytes)
        else json.dumps(v, ensure_ascii=False, default=str)
        if isinstance(v, (list, dict))
        else str(v)
        for v in series.to_list()
    ]
    return pl.Series(series.name, values, dtype=pl.String)


_PLAIN_TYPES = (pl.String, pl.Boolean, pl.Date, pl.Datetime)


def _plain_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep strings, numbers, booleans, dates; make text of the rest."""
    odd = [c for c, t in frame.schema.items() if not (t.is_numeric() or isinstance(t, _PLAIN_TYPES))]
    decimals = [c for c, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    frame = frame.with_columns(pl.col(c).cast(pl.Float64) for c in decimals)
    return frame.with_columns(_as_text(frame[c]) for c in odd if c not in decimals)


def read_parquet(file: LandingFile, options: ReadOptions, con: Connection | None = None) -> FileRead:
    con = con if con is not None else warehouse.scratch_connection()
    check_parquet_is_safe(file, options.max_file_bytes)
    try:
        frame = pl.read_parquet(file.path)
    except MemoryError:
        raise  # the machine's memory (other files take some too), not the file: tried again
    except LIBRARY_FAILURES as exc:
        raise FileProblem(
            Reason.UNREADABLE_FILE, f"{file.relative_path}: not readable as Parquet ({type(exc).__name__})"
        ) from None
    columns = [normalise_column(c) for c in frame.columns]
    if any(not c for c in columns) or len(set(columns)) != len(columns):
        raise FileProblem(
            Reason.MALFORMED_HEADER, f"{file.relative_path}: the file has an empty or repeated column name"
        )
    frame = _plain_columns(frame.rename(dict(zip(frame.columns, columns, strict=True))))
    frame = frame.with_row_index(SOURCE_ROW, offset=1).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
    source = source_from_frame(con, frame, "src")
    del frame
    return FileRead([ReadTable(None, file.path.name, source, raw_lines=_row_json_reader(source))])


def _json_text(value: object) -> str | None:
    """JSON values as the text a CSV would hold; nested values kept as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _json_record(text: str) -> dict[str, str | None] | None:
    """One JSON Lines row as column -> text, or None when it is not a flat-keyed JSON object."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # deep nesting is a malformed row, not a crash
        return None
    if not isinstance(value, dict):
        return None
    record = {normalise_column(k): _json_text(v) for k, v in value.items()}
    if len(record) != len(value) or "" in record:  # keys empty or equal once normalised
        return None
    return record


def read_jsonl(file: LandingFile, options: ReadOptions, con: Connection | None = None) -> FileRead:
    """Each line decoded on its own (UTF-8 unless the agency's configuration says otherwise): a line
    with bytes invalid in that encoding is quarantined (``invalid_encoding``), a line that is not a
    JSON object too (``malformed_json``)."""
    if file.size_bytes == 0:
        raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: the file is empty")
    check_is_text(file)
    encoding = options.encoding or "utf-8"  # JSON is UTF-8 (RFC 8259); an agency may say otherwise
    records: list[dict[str, str | None]] = []
    lines: list[int] = []
    rejects: list[RowReject] = []
    raw: dict[int, str] = {}
    with file.path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            try:
                text = line.decode(encoding).strip()
            except UnicodeDecodeError:
                rejects.append(RowReject(number, Reason.INVALID_ENCODING, None))
                raw[number] = line[: 1 << 16].decode(encoding, "replace").strip()
                continue
            if not text:
                continue
            record = _json_record(text)
            if record is None:
                rejects.append(RowReject(number, Reason.MALFORMED_JSON, None))
                raw[number] = text[: 1 << 16]
                continue
            records.append(record)
            lines.append(number)
    if not records and not rejects:
        raise FileProblem(Reason.EMPTY_FILE, f"{file.relative_path}: no JSON rows")
    columns = list(dict.fromkeys(k for r in records for k in r))
    frame = pl.DataFrame(
        {c: [r.get(c) for r in records] for c in columns}, schema=dict.fromkeys(columns, pl.String)
    ).with_columns(pl.Series(SOURCE_ROW, lines, dtype=pl.Int64))
    source = source_from_frame(con if con is not None else warehouse.scratch_connection(), frame, "src")
    del frame
    json_rows = _row_json_reader(source)

    def raw_lines(wanted: list[int]) -> dict[int, str]:
        return {**json_rows(wanted), **{n: raw[n] for n in wanted if n in raw}}

    return FileRead([ReadTable(None, file.path.name, source, rejects=rejects, raw_lines=raw_lines)], encoding=encoding)


def read_landing_file(
    file: LandingFile, contract: Contract, options: ReadOptions, con: Connection | None = None
) -> FileRead:
    """Read one landing file; raise ``FileProblem`` when it cannot be used at all."""
    if file.format == UNSUPPORTED:
        raise FileProblem(
            Reason.UNSUPPORTED_FORMAT,
            f"{file.relative_path}: not a format Parcours reads; send CSV (.csv, .txt, .tsv), XLSX, Parquet "
            "or JSON Lines (.jsonl, .ndjson)",
        )
    if file.format == NOT_REGULAR:
        raise FileProblem(
            Reason.NOT_A_REGULAR_FILE,
            f"{file.relative_path}: a symbolic link or a special file, not read (a link is never followed); put "
            "the file itself in the agency's folder",
        )
    if file.format == IDENTIFIER_NAMED:
        raise FileProblem(
            Reason.IDENTIFIER_IN_NAME,
            f"{file.relative_path}: the file's name holds a direct identifier (it is shown masked); the file was "
            "not read: rename it <agency>_<YYYYMM>_<entity> and send it again",
        )
    if file.format == UNHASHABLE:
        raise FileProblem(Reason.PROCESSING_ERROR, f"{file.relative_path}: the file cannot be opened (permissions?)")
    if file.size_bytes > options.max_file_bytes:
        raise FileProblem(
            Reason.FILE_TOO_LARGE,
            f"{file.relative_path}: {file.size_bytes / 1e6:,.0f} MB is over the "
            f"{options.max_file_bytes / 1e6:,.0f} MB cap (PARCOURS_MAX_FILE_MB)",
        )
    if file.format == "xlsx":
        return read_xlsx(file, options, contract, con)
    if file.format == "parquet":
        result = read_parquet(file, options, con)
    elif file.format == "jsonl":
        result = read_jsonl(file, options, con)
    else:
        result = read_csv(file, options, con)
    entity = entity_from_name(file.path.name, contract)
    for table in result.tables:
        table.entity = entity
    return result
