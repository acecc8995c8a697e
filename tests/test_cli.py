"""The ``parcours`` command as scripts and analysts use it."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import EXPORT_FORMATS, build_parser, main


def test_help_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("generate", "run", "contract-doc"):
        assert command in result.stdout


HEAVY_MODULES = ("dagster", "duckdb", "polars", "pandas", "numpy", "sklearn", "great_expectations", "plotly", "pyarrow")
COMMANDS = (
    "generate",
    "run",
    "ingest",
    "estimate",
    "studies",
    "bench",
    "contract-doc",
    "disclosure-report",
    "register",
    "amend",
    "releases",
    "reproduce",
    "purge-audit",
)


def _heavy_modules_loaded(code: str) -> list[str]:
    """Top-level packages among HEAVY_MODULES that running ``code`` in a fresh interpreter imported."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split())
    return [m for m in HEAVY_MODULES if m in loaded]


def test_importing_the_command_loads_no_heavy_library() -> None:
    # `parcours --help` must answer at once: the libraries load in the command that needs them.
    assert _heavy_modules_loaded("import pipelines.cli") == []


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_loads_no_heavy_library(command: str | None) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    code = f"from pipelines.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert _heavy_modules_loaded(code) == []


def test_the_command_leaves_at_once_after_what_an_exit_must_do(tmp_path: Path) -> None:
    # ``console_main`` ends the process without Python's teardown: yet a thread we started finishes, what it
    # printed (buffered: stdout is a pipe) comes out, the exit handlers run and the command's status stands.
    marker = tmp_path / "handler"
    code = (
        "import atexit, concurrent.futures, pathlib, threading, time\n"
        "import pipelines.cli as cli\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'ran')\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('from a thread')\n"
        "def command():\n"
        "    threading.Thread(target=late).start()\n"
        "    pool = concurrent.futures.ThreadPoolExecutor(2)\n"  # never shut down: its idle workers must stop
        "    pool.submit(time.sleep, 0.1)\n"
        "    print('from the command')\n"
        "    return 3\n"
        "cli.main = command\n"
        "cli.console_main()\n"
        "print('never')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 3
    assert result.stdout == "from the command\nfrom a thread\n"
    assert marker.read_text() == "ran"


def test_the_runs_imports_are_frozen_only_in_the_commands_own_process(tmp_path: Path) -> None:
    # ``parcours run`` moves what its imports built out of the collector's reach; a test session calling
    # ``main`` keeps its collector as it was (cyclic garbage of earlier tests would otherwise stay for good).
    code = (
        "import gc, sys\n"
        "import pipelines.cli as cli, pipelines.run as run, quality.suites_process as suites\n"
        "suites.start_ahead = lambda: None\n"  # no suites' process to start: the run is faked below
        "def fake(resource, **options):\n"
        "    print('frozen', gc.get_freeze_count())\n"
        "    return run.RunOutcome(success=True)\n"
        "run.run_pipeline = fake\n"
        f"argv = ['run', '--data-dir', {str(tmp_path)!r}, '--quiet']\n"
        "if sys.argv[1] == 'main':\n"
        "    sys.exit(cli.main(argv))\n"
        "sys.argv = ['parcours', *argv]\n"
        "cli.console_main()\n"
    )
    frozen = {}
    for entry in ("main", "console_main"):
        result = subprocess.run([sys.executable, "-c", code, entry], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        frozen[entry] = int(result.stdout.split("frozen ")[1].split()[0])
    assert frozen["main"] == 0
    assert frozen["console_main"] > 100_000  # Dagster's and the libraries' objects, imported by then


def test_every_command_has_a_help() -> None:
    # The lists above stay complete: a new command is checked too.
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == set(COMMANDS)


def test_the_command_offers_the_generators_export_formats() -> None:
    from pipelines.synthetic.federation import EXPORT_FORMATS as GENERATOR_FORMATS

    assert EXPORT_FORMATS == GENERATOR_FORMATS


def test_generate_then_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--out", str(tmp_path), "--agencies", "3", "--persons", "120", "--seed", "4"]) == 0
    assert (tmp_path / "ground_truth.json").exists()
    assert json.loads((tmp_path / "ground_truth.json").read_text())["spec"]["persons"] == 120
    assert len(list((tmp_path / "landing").iterdir())) == 3
    capsys.readouterr()
    assert main(["run", "--data-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "assets materialised" in err
    assert (tmp_path / "serving" / "parcours_serving.duckdb").exists()
    # A line per stage, in order, and none of the framework's own log.
    stages = [line.split()[0] for line in err.splitlines() if line.startswith("  ") and " s   " in line]
    assert stages == ["ingest", "models", "studies", "publication"]
    assert " - dagster - " not in err
    assert "STEP_SUCCESS" not in err


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


@pytest.mark.parametrize("mode", ["--quiet", None, "--verbose"])
def test_run_exits_non_zero_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str | None) -> None:
    assert main(["run", "--data-dir", str(tmp_path), *([mode] if mode else [])]) == 1
    err = capsys.readouterr().err
    assert "parcours run failed" in err
    assert "No agency export found" in err
    stage_lines = [line for line in err.splitlines() if line.startswith("  ")]
    if mode is None:  # a line per stage: where it stopped, and what never ran
        assert "failed" in stage_lines[0]
        assert stage_lines[0].split()[0] == "ingest"
        assert [line.split()[0] for line in stage_lines[1:] if line.endswith("not run")] == [
            "models",
            "studies",
            "publication",
        ]
    elif mode == "--quiet":
        assert stage_lines == []
    assert (" - dagster - " in err) == (mode == "--verbose")


def test_run_keeps_its_history_under_dagster_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["generate", "--out", str(tmp_path), "--agencies", "3", "--persons", "40"]) == 0
    assert main(["run", "--data-dir", str(tmp_path), "--quiet"]) == 0
    assert (home / "storage").is_dir()
    # A new home has Dagster's usage statistics off: no banner in the middle of a run.
    assert "enabled: false" in (home / "dagster.yaml").read_text()
    assert "Telemetry" not in capsys.readouterr().err


def test_a_reader_that_stops_early_is_no_error() -> None:
    # `parcours studies | head` printed a BrokenPipeError traceback when head stopped reading.
    script = (
        "import sys, pipelines.cli as cli\n"
        "def many(args):\n"
        "    for i in range(200_000):\n"
        "        print('une ligne de verdict', i)\n"
        "    return 0\n"
        "cli.cmd_studies = many\n"
        "sys.exit(cli.main(['studies']))\n"
    )
    command = ["/bin/sh", "-c", f'"{sys.executable}" -c "$SCRIPT" | head -1']
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "SCRIPT": script}, timeout=120, check=False
    )
    assert done.stdout == "une ligne de verdict 0\n"
    assert "Traceback" not in done.stderr, done.stderr
    assert "BrokenPipe" not in done.stderr, done.stderr
