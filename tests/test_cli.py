"""The ``parcours`` command as scripts and analysts use it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main


def test_help_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("generate", "run", "contract-doc"):
        assert command in result.stdout


def test_generate_then_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--out", str(tmp_path), "--agencies", "3", "--persons", "120", "--seed", "4"]) == 0
    assert (tmp_path / "ground_truth.json").exists()
    assert json.loads((tmp_path / "ground_truth.json").read_text())["spec"]["persons"] == 120
    assert len(list((tmp_path / "landing").iterdir())) == 3
    assert main(["run", "--data-dir", str(tmp_path), "--quiet"]) == 0
    assert "assets materialised" in capsys.readouterr().err
    assert (tmp_path / "serving" / "parcours_serving.duckdb").exists()


def test_generate_will_not_mix_two_federations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--out", str(tmp_path), "--agencies", "3", "--persons", "30"]) == 0
    assert main(["generate", "--out", str(tmp_path), "--agencies", "3", "--persons", "30"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path), "--agencies", "3", "--persons", "30", "--force"]) == 0


def test_invalid_arguments_get_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--out", str(tmp_path), "--months", "2"]) == 2
    assert "at least 3" in capsys.readouterr().err
    assert main(["run", "--data-dir", str(tmp_path), "--data-cutoff", "yesterday"]) == 2
    assert "ISO date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "--persons", "0"])


def test_run_exits_non_zero_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--data-dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "parcours run failed" in err
    assert "No agency export found" in err


def test_run_keeps_its_history_under_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["generate", "--out", str(tmp_path), "--agencies", "3", "--persons", "40"]) == 0
    assert main(["run", "--data-dir", str(tmp_path), "--quiet"]) == 0
    assert (home / "storage").is_dir()
