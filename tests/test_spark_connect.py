"""The pipeline through Spark Connect (how a real cluster is reached), against a Connect server started here,
publishes the snapshot DuckDB publishes. Its own file: the Connect run and the local-session run of
``test_spark_engine.py`` go to different workers of ``make test``."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PipelineRun
from tests.spark_snapshots import NEEDS_JAVA, snapshot_differences, spark_run_on

pytestmark = NEEDS_JAVA


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on this machine, as a cluster would run one."""
    import pyspark

    home = Path(pyspark.__file__).parent
    port = _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    env = {**os.environ, "SPARK_HOME": str(home)}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                str(home / "bin" / "spark-submit"),
                "--class",
                "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--master",
                "local[2]",
                "--conf",
                f"spark.connect.grpc.binding.port={port}",
                "--conf",
                "spark.connect.grpc.binding.address=127.0.0.1",
                "--conf",
                "spark.ui.enabled=false",
                "--conf",
                "spark.sql.shuffle.partitions=4",
                "spark-internal",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"the Spark Connect server stopped: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("the Spark Connect server did not open its port in 240 s")
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_pipeline_through_spark_connect_publishes_the_same_snapshot(
    small_run: PipelineRun,
    small_federation_dir: Path,
    connect_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = spark_run_on(small_federation_dir / "landing", tmp_path_factory.mktemp("connect_run"), connect_server)
    assert run.outcome.success, run.outcome.failures
    problems = snapshot_differences(small_run.settings.serving_path.parent, run.settings.serving_path.parent)
    assert problems == []
