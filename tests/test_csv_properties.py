"""Property-based tests of the CSV reader: whatever text a well-formed CSV holds comes back intact."""

import csv
import io
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.ingest.config import ReadOptions
from pipelines.ingest.readers import SOURCE_ROW, describe_file, read_csv
from tests.hypothesis_budget import examples

FIELD = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters=',;"\n\t '),
    max_size=12,
)
ROWS = st.lists(st.lists(FIELD, min_size=3, max_size=3), min_size=1, max_size=25)


def _write(rows: list[list[str]], delimiter: str, encoding: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["alpha", "beta", "gamma"])
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def _read(content: bytes) -> tuple[list[list[str | None]], list[int], list[int]]:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "AGX" / "AGX_persons.csv"
        path.parent.mkdir()
        path.write_bytes(content)
        landing = describe_file(path, Path(folder))
        assert landing is not None
        table = read_csv(landing, ReadOptions()).tables[0]
        values = [list(row) for row in table.frame.drop(SOURCE_ROW).iter_rows()]
        lines = [n for n in table.frame[SOURCE_ROW].to_list() if n is not None]
        return values, lines, [r.line or 0 for r in table.rejects]


@settings(max_examples=examples(60), deadline=None)
@given(rows=ROWS, delimiter=st.sampled_from([",", ";", "\t"]))
def test_every_field_round_trips(rows: list[list[str]], delimiter: str) -> None:
    values, _, rejects = _read(_write(rows, delimiter, "utf-8"))
    assert rejects == []
    # An empty field, quoted or not, is read as missing.
    assert values == [[field if field != "" else None for field in row] for row in rows]


@settings(max_examples=examples(40), deadline=None)
@given(rows=st.lists(st.lists(st.text(alphabet="abcé€œ’ 0123456789", max_size=8), min_size=3, max_size=3),
                     min_size=1, max_size=20))  # fmt: skip
def test_windows_1252_files_read_like_utf8_files(rows: list[list[str]]) -> None:
    assert _read(_write(rows, ";", "cp1252"))[0] == _read(_write(rows, ";", "utf-8"))[0]


@settings(max_examples=examples(40), deadline=None)
@given(rows=st.lists(st.lists(st.text(alphabet="abc123 ", max_size=6), min_size=3, max_size=3), min_size=1,
                     max_size=20), broken=st.data())  # fmt: skip
def test_rows_in_equals_rows_read_plus_rows_rejected(rows: list[list[str]], broken: st.DataObject) -> None:
    text = _write(rows, ",", "utf-8").decode().splitlines()
    index = broken.draw(st.integers(min_value=1, max_value=len(text) - 1))
    text[index] += ',"extra"'
    values, lines, rejects = _read(("\n".join(text) + "\n").encode())
    assert len(values) + len(rejects) == len(rows)
    assert rejects == [index + 1]
    assert sorted(lines + rejects) == list(range(2, len(rows) + 2))
