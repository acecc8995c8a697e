"""Where Parcours keeps its files, read from the environment when asked (never at import).

Every path has a safe local default under the repository's ``data/generated/`` folder, which
git ignores. Production deployments point the variables elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.engines import EngineConfig


def project_root() -> Path:
    """The repository root: models, contract and reference data live beside the package."""
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    landing_dir: Path
    warehouse_path: Path
    serving_path: Path
    data_cutoff: date | None
    today: date | None = None
    """The day of ingestion, for future-date checks (None: the real today)."""
    agencies_config_file: Path | None = None
    analyst_snapshot_path: Path | None = None
    """Person-level study inputs for the analysts' study builder, apart from the serving snapshot."""

    @property
    def analyst_snapshot(self) -> Path:
        return self.analyst_snapshot_path or self.serving_path.with_name("parcours_analyst.duckdb")

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit" / "audit.jsonl"

    @property
    def agencies_config(self) -> Path:
        """Per-agency reading overrides; ``agencies.yaml`` in the landing folder by default."""
        return self.agencies_config_file or self.landing_dir / "agencies.yaml"

    @property
    def models_dir(self) -> Path:
        return project_root() / "models"

    @property
    def contract_path(self) -> Path:
        return project_root() / "quality" / "contract.yaml"

    @property
    def reference_dir(self) -> Path:
        return project_root() / "data" / "reference"


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def parse_cutoff(value: str | None, name: str = "PARCOURS_DATA_CUTOFF") -> date | None:
    """An ISO date, or None for "derive it from the data"."""
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{name} must be an ISO date (yyyy-mm-dd), got {value!r}") from exc


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``PARCOURS_*`` environment variables, then explicit overrides.

    ``PARCOURS_DATA_DIR`` moves everything at once; the other variables move one piece.
    """
    env = os.environ if env is None else env
    data_dir = _path(env, "PARCOURS_DATA_DIR", project_root() / "data" / "generated")
    settings = Settings(
        data_dir=data_dir,
        landing_dir=_path(env, "PARCOURS_LANDING_DIR", data_dir / "landing"),
        warehouse_path=_path(env, "PARCOURS_WAREHOUSE", data_dir / "warehouse" / "parcours.duckdb"),
        serving_path=_path(env, "PARCOURS_SERVING", data_dir / "serving" / "parcours_serving.duckdb"),
        data_cutoff=parse_cutoff(env.get("PARCOURS_DATA_CUTOFF")),
        today=parse_cutoff(env.get("PARCOURS_TODAY"), "PARCOURS_TODAY"),
        agencies_config_file=_path(env, "PARCOURS_AGENCY_CONFIG", Path())
        if env.get("PARCOURS_AGENCY_CONFIG")
        else None,
        analyst_snapshot_path=_path(env, "PARCOURS_ANALYST_SNAPSHOT", Path())
        if env.get("PARCOURS_ANALYST_SNAPSHOT")
        else None,
    )
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return settings
    return dataclasses.replace(settings, **clean)  # type: ignore[arg-type]


ENGINE_SETTINGS = {
    "PARCOURS_DUCKDB_MEMORY_LIMIT": "memory_limit",
    "PARCOURS_DUCKDB_TEMP_DIR": "temp_directory",
    "PARCOURS_DUCKDB_THREADS": "threads",
}
"""Environment variables and the DuckDB settings they set on every connection. Unset, the pipeline's
defaults hold (``pipelines.warehouse.connection_config``): a 2 GB memory limit, spilling to
``<database>.tmp`` beside the file once it is reached, one thread per core. A machine with memory
to spare sets a higher limit (``PARCOURS_DUCKDB_MEMORY_LIMIT=6GB``: fewer spills, faster), a
large federation a temporary folder on a disk with room."""


ENGINE_VARIABLES = {
    "PARCOURS_ENGINE": "kind",
    "PARCOURS_SPARK_MASTER": "spark_master",
    "PARCOURS_SPARK_REMOTE": "spark_remote",
    "PARCOURS_SPARK_STORE": "spark_store",
}
"""Which engine runs the models, the checks and the study queries (docs/scale-out.md): ``duckdb``
(the default) or ``spark``, on a Spark master (``local[2]`` unless said) or a Spark Connect URL."""


def engine_config(env: Mapping[str, str] | None = None, **overrides: str) -> EngineConfig:
    """The engine a run uses, read when it starts; ``PARCOURS_SPARK_CONF`` adds Spark settings
    (``name=value`` pairs separated by spaces, for example ``spark.executor.memory=8g``)."""
    from pipelines.engines import EngineConfig

    env = os.environ if env is None else env
    chosen = {field: env.get(name, "").strip() for name, field in ENGINE_VARIABLES.items()}
    chosen.update({k: v.strip() for k, v in overrides.items() if v and v.strip()})
    conf: list[tuple[str, str]] = []
    for pair in env.get("PARCOURS_SPARK_CONF", "").split():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"PARCOURS_SPARK_CONF takes name=value pairs, got {pair!r}")
        conf.append((name, value))
    return EngineConfig(
        kind=(chosen["kind"] or "duckdb").lower(),
        spark_master=chosen["spark_master"] or "local[2]",
        spark_remote=chosen["spark_remote"],
        spark_store=chosen["spark_store"],
        spark_conf=tuple(conf),
    )


def engine_settings(env: Mapping[str, str] | None = None) -> dict[str, str | bool | int | float | list[str]]:
    """The DuckDB settings the environment asks for (read when a connection opens, never at import)."""
    env = os.environ if env is None else env
    chosen = {setting: env.get(name, "").strip() for name, setting in ENGINE_SETTINGS.items()}
    return {setting: value for setting, value in chosen.items() if value}  # DuckDB parses each value
