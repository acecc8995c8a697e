"""Pseudonymisation: keyed, stable, scoped by agency, and never without a real key outside demo mode."""

import base64
import json
import secrets
from pathlib import Path

import polars as pl
import pytest

from pipelines.cli import main
from pipelines.ingest.pseudonyms import DEMO_KEY, PseudonymKeyError, key_weakness, load_key, pseudonym
from pipelines.settings import project_root


def test_pseudonyms_are_stable_keyed_and_scoped_by_agency() -> None:
    assert pseudonym(DEMO_KEY, "AG1", "P1") == pseudonym(DEMO_KEY, "AG1", "P1")
    assert pseudonym(DEMO_KEY, "AG1", "P1") != pseudonym(DEMO_KEY, "AG2", "P1")
    assert pseudonym(DEMO_KEY, "AG1", "P1") != pseudonym(b"another key of 32 bytes or more!!", "AG1", "P1")
    assert len(pseudonym(DEMO_KEY, "AG1", "P1")) == 32


def test_a_key_is_required_outside_demo_mode() -> None:
    with pytest.raises(PseudonymKeyError, match="PARCOURS_PSEUDONYM_KEY_FILE"):
        load_key({})
    assert load_key({"PARCOURS_DEMO": "1"}) == DEMO_KEY


def test_the_key_file_must_be_outside_the_repository_and_long_enough(tmp_path: Path) -> None:
    inside = project_root() / "pyproject.toml"
    with pytest.raises(PseudonymKeyError, match="inside the repository"):
        load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(inside)})
    short = tmp_path / "short.key"
    short.write_text("tiny")
    with pytest.raises(PseudonymKeyError, match="shorter than 32"):
        load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(short)})
    good = tmp_path / "good.key"
    key = secrets.token_hex(32)
    good.write_text(key + "\n")
    assert load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(good)}) == key.encode()
    with pytest.raises(PseudonymKeyError, match="cannot read"):
        load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(tmp_path / "missing.key")})


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (DEMO_KEY, "public demo key"),
        (DEMO_KEY.upper() + b"\n", "public demo key"),
        (b"\x00" * 36, "distinct byte"),
        (b"0" * 64, "distinct byte"),
        (b"0123456789abcdef" * 4, "repeats a pattern"),
        (b"secret-secret-secret-secret-secret-", "distinct byte"),
        (b"Parcours-2026!Parcours-2026!Parcours-2026!", "repeats a pattern"),
        (b"abcdefghijklmnopqrstuvwxyz0123456789", "in sequence"),
        (b"tiny", "shorter than 32"),
    ],
)
def test_weak_keys_are_refused_outside_demo_mode(tmp_path: Path, key: bytes, why: str) -> None:
    assert why in (key_weakness(key.strip()) or "")
    path = tmp_path / "weak.key"
    path.write_bytes(key)
    with pytest.raises(PseudonymKeyError, match=r"refused|shorter") as refused:
        load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(path)})
    assert "openssl rand" in str(refused.value) or "shorter" in str(refused.value)
    assert key.decode(errors="replace").strip() not in str(refused.value)  # never quoted
    # Demo mode takes any key: the data is synthetic.
    assert load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(path), "PARCOURS_DEMO": "1"}) == key.strip()


def test_random_keys_are_never_refused() -> None:
    for _ in range(500):
        assert key_weakness(secrets.token_bytes(32)) is None
        assert key_weakness(secrets.token_hex(32).encode()) is None
        assert key_weakness(base64.b64encode(secrets.token_bytes(32))) is None


def test_ingest_without_a_key_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PARCOURS_DEMO")
    (tmp_path / "AGX").mkdir()
    (tmp_path / "AGX" / "AGX_agencies.csv").write_text("agency_id,model,departement\nAGX,remote,75\n")
    assert main(["ingest", str(tmp_path / "AGX"), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    assert "PARCOURS_PSEUDONYM_KEY_FILE" in capsys.readouterr().err


def test_ingest_json_reports_one_object_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "landing" / "AGX"
    folder.mkdir(parents=True)
    (folder / "AGX_202601_agencies.csv").write_text("agency_id,model,departement\nAGX,remote,75\nAGX,hybrid,75\n")
    (folder / "AGX_202601_persons.parquet").write_bytes(b"not parquet")
    code = main(["ingest", str(tmp_path / "landing"), "--json", "--warehouse", str(tmp_path / "w.duckdb")])
    assert code == 1  # some rows or files refused
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(r) for r in reports] == [
        {"file", "sha256", "status", "rows_in", "rows_accepted", "rows_quarantined", "reasons", "message"}
    ] * 2
    by_file = {r["file"]: r for r in reports}
    agencies = by_file["AGX/AGX_202601_agencies.csv"]
    assert (agencies["status"], agencies["rows_in"], agencies["reasons"]) == ("partial", 2, {"invalid_code": 1})
    broken = by_file["AGX/AGX_202601_persons.parquet"]
    assert (broken["status"], broken["reasons"]) == ("rejected", {"unreadable_file": 0})
    assert main(["ingest", str(tmp_path / "nowhere"), "--json"]) == 2


def test_ingest_exit_statuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "AGX"
    folder.mkdir()
    (folder / "AGX_202601_agencies.csv").write_text("agency_id,model,departement\nAGX,remote,75\n")
    warehouse = ["--warehouse", str(tmp_path / "w.duckdb")]
    assert main(["ingest", str(folder), *warehouse]) == 0  # all accepted
    assert main(["ingest", str(folder), *warehouse]) == 0  # already received: nothing refused
    (folder / "export.json").write_text("{}")
    assert main(["ingest", str(folder / "export.json"), *warehouse]) == 1  # a file refused
    assert "unsupported_format" not in capsys.readouterr().err
    (tmp_path / "locked.duckdb").mkdir()  # a warehouse that cannot be opened: could not run
    assert main(["ingest", str(folder), "--warehouse", str(tmp_path / "locked.duckdb")]) == 2
    assert "nothing was ingested" in capsys.readouterr().err


@pytest.mark.parametrize(
    "key",
    [DEMO_KEY, b"k" * 63 + b"!", secrets.token_bytes(64), secrets.token_bytes(65), secrets.token_bytes(200)],
    ids=["demo", "63 bytes", "one block", "one block and a byte", "hashed first"],
)
def test_the_engines_keyed_hash_is_the_standard_hmac_byte_for_byte(key: bytes) -> None:
    """``keyed_hash_sql`` (every row at once in DuckDB) against Python's ``hmac`` (the oracle, and what
    every stored pseudonym was written with): the same 128 bits for any value, whatever its script or
    length, so warehouses written before keep their pseudonyms."""
    import hashlib
    import hmac

    from pipelines import warehouse
    from pipelines.ingest.pseudonyms import keyed_hash_parameters, keyed_hash_sql

    values = [
        "P1",
        "",
        " ",
        "AG001-V00431110",
        "ÉLODIE-é\u0301",  # a combining accent: bytes as sent, no normalisation
        "李小龍",
        "😀\u200b\u00a0x",
        "x" * 1000,
        "a\x1fb",  # the unit separator inside a value
        "'; drop table t; --",
        *(secrets.token_urlsafe(n) for n in range(1, 80)),
    ]
    con = warehouse.memory_connection()
    for scope in ("AG001", "/federation", "agence é"):
        with warehouse.registered(con, "v", pl.DataFrame({"value": values})):
            rows = con.execute(f"select value, {keyed_hash_sql('value')} from v", keyed_hash_parameters(key, scope))
            got = dict(rows.fetchall())
        oracle = {v: hmac.new(key, f"{scope}\x1f{v}".encode(), hashlib.sha256).hexdigest()[:32] for v in values}
        assert got == oracle
        assert got["P1"] == pseudonym(key, scope, "P1")
    con.close()
