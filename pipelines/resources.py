"""The one Dagster resource: where Parcours reads and writes, resolved at run time."""

import os
from pathlib import Path

import dagster as dg

from pipelines.settings import Settings, load_settings, parse_cutoff


class ParcoursResource(dg.ConfigurableResource):
    """Empty fields mean "use the ``PARCOURS_*`` environment variable or the local default"."""

    data_dir: str = ""
    landing_dir: str = ""
    warehouse_path: str = ""
    serving_path: str = ""
    data_cutoff: str = ""

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
