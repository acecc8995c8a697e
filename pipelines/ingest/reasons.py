"""The closed list of reasons a file or a row is quarantined (documented in docs/ingestion.md)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # The whole file: every row it holds (if any can be counted) is quarantined with this reason.
    UNSUPPORTED_FORMAT = "unsupported_format"
    NOT_A_REGULAR_FILE = "not_a_regular_file"
    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    UNREADABLE_FILE = "unreadable_file"
    UNSAFE_ARCHIVE = "unsafe_archive"
    UNKNOWN_ENTITY = "unknown_entity"
    MALFORMED_HEADER = "malformed_header"
    MISSING_REQUIRED_COLUMN = "missing_required_column"
    IDENTIFIER_COLUMN = "identifier_column"
    IDENTIFIER_IN_NAME = "identifier_in_name"
    PROCESSING_ERROR = "processing_error"
    # One row.
    MALFORMED_ROW = "malformed_row"
    INVALID_ENCODING = "invalid_encoding"
    MALFORMED_JSON = "malformed_json"
    CONTROL_CHARACTERS = "control_characters"
    FIELD_TOO_LONG = "field_too_long"
    FORMULA_LIKE = "formula_like"
    IDENTIFIER_IN_VALUE = "identifier_in_value"
    MISSING_VALUE = "missing_value"
    INVALID_TYPE = "invalid_type"
    INVALID_CODE = "invalid_code"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_DATE = "future_date"
    INCONSISTENT_DATES = "inconsistent_dates"
    AGENCY_MISMATCH = "agency_mismatch"
    DUPLICATE_ROW = "duplicate_row"
    DUPLICATE_KEY = "duplicate_key"
    ORPHAN_REFERENCE = "orphan_reference"


PRIVACY_REASONS = frozenset({Reason.IDENTIFIER_COLUMN, Reason.IDENTIFIER_IN_NAME, Reason.IDENTIFIER_IN_VALUE})
"""Rows quarantined for these reasons are stored without their raw line: it holds an identifier."""

DESCRIPTIONS: dict[Reason, str] = {
    Reason.UNSUPPORTED_FORMAT: "the file is not in a format Parcours reads (CSV, TXT, TSV, XLSX, Parquet, JSON Lines)",
    Reason.NOT_A_REGULAR_FILE: (
        "a symbolic link, a named pipe or another special file: only regular files placed in the landing folder are "
        "read (a link could make Parcours read a file outside it); reported again at every run until replaced"
    ),
    Reason.EMPTY_FILE: "the file has no bytes, or only blank lines",
    Reason.FILE_TOO_LARGE: "the file is over the size cap (PARCOURS_MAX_FILE_MB, 2,048 MB by default)",
    Reason.UNREADABLE_FILE: (
        "the file cannot be read in its format (binary content, corrupt Parquet or XLSX, UTF-16 text, not a table)"
    ),
    Reason.UNSAFE_ARCHIVE: (
        "an XLSX or Parquet file whose content would expand past the cap, or an XLSX that declares XML entities"
    ),
    Reason.UNKNOWN_ENTITY: "the file or sheet name does not say which entity of the contract it holds",
    Reason.MALFORMED_HEADER: (
        "the header is missing, too long, unparseable, or has an empty, repeated or control-character column name"
    ),
    Reason.MISSING_REQUIRED_COLUMN: "a column the contract requires is absent",
    Reason.IDENTIFIER_COLUMN: (
        "a column is named like a direct identifier (name, address, phone, e-mail, NIR...), or its name holds one "
        "(then it is named by its position)"
    ),
    Reason.IDENTIFIER_IN_NAME: (
        "the file's or a sheet's name holds a direct identifier (phone, e-mail, NIR, titled name...): nothing is "
        "read, and the name is stored masked (the file is known by its SHA-256)"
    ),
    Reason.PROCESSING_ERROR: (
        "reading or checking the file failed unexpectedly (the error's type is named); the file is tried again "
        "at the next run"
    ),
    Reason.MALFORMED_ROW: "the row has more or fewer fields than the header, or an unterminated quote",
    Reason.INVALID_ENCODING: "the row has bytes that are not valid in the file's encoding",
    Reason.MALFORMED_JSON: "the JSON Lines row is not a JSON object (or is nested too deeply to read)",
    Reason.CONTROL_CHARACTERS: "a field holds a NUL byte or another control character",
    Reason.FIELD_TOO_LONG: "a field is longer than the contract allows (200 characters, 2,000 for free text)",
    Reason.FORMULA_LIKE: (
        "a text field starts with =, +, - or @ and would run as a spreadsheet formula (in free text, a bullet or "
        "a mention passes)"
    ),
    Reason.IDENTIFIER_IN_VALUE: (
        "a value looks like a direct identifier (NIR, phone, e-mail, IBAN, foreign national number, address, "
        "postcode, birth date, name after a title)"
    ),
    Reason.MISSING_VALUE: "a required field is empty",
    Reason.INVALID_TYPE: "a value cannot be read as the contract's type (number, date, boolean)",
    Reason.INVALID_CODE: "a value is not among the contract's allowed values",
    Reason.OUT_OF_RANGE: "a number is outside the contract's bounds (birth year, GIR, hours, Zarit...)",
    Reason.FUTURE_DATE: "a date is after the day of ingestion",
    Reason.INCONSISTENT_DATES: "an end date is before its start (discharge before admission, end before start...)",
    Reason.AGENCY_MISMATCH: "the row's agency_id is not the agency whose folder the file came from",
    Reason.DUPLICATE_ROW: "the same row was already received (in this file or an earlier one)",
    Reason.DUPLICATE_KEY: "another row with the same primary key but different values was already received",
    Reason.ORPHAN_REFERENCE: (
        "a reference (person, episode, care manager) points to no row accepted from this agency; the row is held "
        "back and released by the first run in which its parent is accepted"
    ),
}

FILE_REASONS = (
    Reason.UNSUPPORTED_FORMAT,
    Reason.NOT_A_REGULAR_FILE,
    Reason.EMPTY_FILE,
    Reason.FILE_TOO_LARGE,
    Reason.UNREADABLE_FILE,
    Reason.UNSAFE_ARCHIVE,
    Reason.UNKNOWN_ENTITY,
    Reason.MALFORMED_HEADER,
    Reason.MISSING_REQUIRED_COLUMN,
    Reason.IDENTIFIER_COLUMN,
    Reason.IDENTIFIER_IN_NAME,
    Reason.PROCESSING_ERROR,
)
"""Reasons that concern a whole file (or one XLSX sheet); the others concern one row."""

ROW_REASONS = tuple(r for r in Reason if r not in FILE_REASONS)
HELD_REASONS = frozenset({Reason.ORPHAN_REFERENCE})
"""Rows quarantined for these reasons are kept, typed and pseudonymised, and released when they resolve."""
RETRIED_REASONS = frozenset({Reason.PROCESSING_ERROR, Reason.NOT_A_REGULAR_FILE})
"""Files refused for these reasons are not remembered as received: the next run tries them again."""
