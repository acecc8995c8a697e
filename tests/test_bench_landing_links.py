"""A large point's landing files become links to their kept copies, only where the bytes are the same."""

from pathlib import Path

from pipelines.bench.landing_links import link_to_kept_inputs
from pipelines.ingest.readers import discover_landing_files
from pipelines.operations.batches import keep_inputs


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_only_files_kept_with_the_same_bytes_are_linked(tmp_path: Path) -> None:
    same = _write(tmp_path / "landing" / "AG001" / "AG001_persons.csv", "person_id\nP1\n")
    changed = _write(tmp_path / "landing" / "AG001" / "AG001_episodes.csv", "episode_id\nE1\n")
    new = _write(tmp_path / "landing" / "AG002" / "AG002_persons.csv", "person_id\nP2\n")
    keep_inputs(tmp_path, [f for f in discover_landing_files(tmp_path / "landing") if f.path != new])
    _write(changed, "episode_id\nE2\n")  # same size, other bytes: its kept copy is not its content

    assert link_to_kept_inputs(tmp_path) == (1, same.stat().st_size)

    kept = {p.read_text(encoding="utf-8"): p for p in (tmp_path / "inputs").rglob("*.csv")}
    assert same.samefile(kept["person_id\nP1\n"])
    assert same.read_text(encoding="utf-8") == "person_id\nP1\n"
    assert changed.read_text(encoding="utf-8") == "episode_id\nE2\n"
    assert not any(changed.samefile(p) for p in kept.values())
    assert new.stat().st_nlink == 1
    assert sorted(p.name for p in (tmp_path / "landing").rglob("*")) == sorted(
        ["AG001", "AG002", "AG001_persons.csv", "AG001_episodes.csv", "AG002_persons.csv"]
    )
    assert link_to_kept_inputs(tmp_path) == (0, 0)  # linked already
