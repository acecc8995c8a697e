"""The production Dagster instance (deploy/dagster.yaml): it loads, queues one writer at a time, and keeps
its run storage in PostgreSQL, checked against a PostgreSQL server this test starts (Debian's
``postgresql`` package: ``make test`` installs it when missing)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.settings import project_root
from pipelines.writer_lock import WRITER_TAG

CONFIG = project_root() / "deploy" / "dagster.yaml"


def _postgres_bin() -> Path | None:
    for candidate in [shutil.which("initdb"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))]:
        if candidate:
            return Path(candidate).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql package)")
    # Not under pytest's own temporary folder: when the tests run as root, the server runs as another user,
    # who must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="parcours-postgres-"))
    data = folder / "data"
    port = _free_port()

    def run(command: list[str]) -> None:
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its files and server belong to another user
        user = "postgres" if shutil.which("runuser") else ""
        if not user:
            pytest.skip("running as root without runuser")
        shutil.chown(folder, user)
        as_user = ["runuser", "-u", user, "--"]
    run([*as_user, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "parcours"])
    run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
         f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"])  # fmt: skip
    try:
        yield {
            "PARCOURS_PG_USER": "parcours",
            "PARCOURS_PG_PASSWORD": "",
            "PARCOURS_PG_HOST": "127.0.0.1",
            "PARCOURS_PG_DB": "postgres",  # the database initdb creates
            "PARCOURS_PG_PORT": str(port),
        }
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], check=False,
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def test_the_production_instance_queues_one_writer_at_a_time() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == 1
    assert {"key": WRITER_TAG, "limit": 1} in runs["tag_concurrency_limits"]
    assert "postgres" in config["storage"]
    assert config["telemetry"] == {"enabled": False}


def test_every_job_that_writes_the_warehouse_is_a_writer() -> None:
    from pipelines.definitions import defs
    from pipelines.schedules import AUDIT_JOB

    repository = defs.get_repository_def()
    jobs = [j for j in repository.get_all_jobs() if not j.name.startswith("__") and j.name != AUDIT_JOB]
    assert {j.name for j in jobs} == {"ingest_landing", "publish_release"}
    for job in jobs:
        assert job.tags.get(WRITER_TAG) == "warehouse", job.name


def test_the_production_instance_keeps_its_runs_in_postgres(
    postgres: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(CONFIG, home / "dagster.yaml")
    for name, value in postgres.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        @dg.asset
        def probe() -> int:
            return 1

        result = dg.materialize([probe], instance=instance, tags={WRITER_TAG: "warehouse"})
        assert result.success
    with dg.DagsterInstance.get() as again:  # a new process would see the same history
        run = again.get_run_by_id(result.run_id)
        assert run is not None
        assert run.tags[WRITER_TAG] == "warehouse"
