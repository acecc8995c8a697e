"""The one Dagster resource: where Parcours reads and writes, and on which engine, resolved at run time."""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from pipelines.engines import Engine, EngineConfig, open_engine
from pipelines.settings import Settings, engine_config, load_settings, parse_cutoff


class ParcoursResource(dg.ConfigurableResource):
    """Empty fields mean "use the ``PARCOURS_*`` environment variable or the local default"."""

    data_dir: str = ""
    landing_dir: str = ""
    warehouse_path: str = ""
    serving_path: str = ""
    data_cutoff: str = ""
    engine_kind: str = ""
    """``duckdb`` or ``spark``; empty: ``PARCOURS_ENGINE`` (``duckdb`` when unset)."""
    spark_remote: str = ""
    """A Spark Connect URL; empty: ``PARCOURS_SPARK_REMOTE`` (a session in this process when unset)."""
    release: str = ""
    """The name of the release a publication makes (``2026-Q3``); empty: ``PARCOURS_RELEASE``, else the
    quarter of the data cut-off (with a revision number when that name is taken)."""

    def release_name(self) -> str:
        return self.release.strip() or os.environ.get("PARCOURS_RELEASE", "").strip()

    def settings(self) -> Settings:
        env = dict(os.environ)
        if self.data_dir:
            env["PARCOURS_DATA_DIR"] = self.data_dir
        return load_settings(
            env,
            landing_dir=Path(self.landing_dir).resolve() if self.landing_dir else None,
            warehouse_path=Path(self.warehouse_path).resolve() if self.warehouse_path else None,
            serving_path=Path(self.serving_path).resolve() if self.serving_path else None,
            data_cutoff=parse_cutoff(self.data_cutoff),
        )

    def engine_config(self) -> EngineConfig:
        return engine_config(kind=self.engine_kind, spark_remote=self.spark_remote)

    @contextmanager
    def engine(self, sources: Sequence[str] = ()) -> Iterator[Engine]:
        """The configured engine over the working database (read when the step starts)."""
        with open_engine(self.engine_config(), self.settings().warehouse_path, sources) as engine:
            yield engine
