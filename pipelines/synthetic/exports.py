"""Write a synthetic federation as agencies really send it: one landing folder per agency.

Formats, assigned to agencies in turn:

* ``csv_cp1252``: semicolon-separated, Windows-1252, decimal commas, ``dd/mm/yyyy`` dates and
  ``oui``/``non`` booleans (what a French office suite exports);
* ``csv_utf8``: comma-separated UTF-8 with a byte-order mark, ISO dates;
* ``xlsx``: one workbook, one sheet named after each entity, real date cells;
* ``parquet``: one file per entity.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import xlsxwriter

from pipelines.synthetic.federation import Federation, Progress

GROUND_TRUTH_FILE = "ground_truth.json"


def landing_file_stem(agency_id: str, extract_month: str, entity: str) -> str:
    return f"{agency_id}_{extract_month}_{entity}"


def split_by_agency(federation: Federation) -> dict[str, dict[str, pl.DataFrame]]:
    """Each agency's share of every table: what it exports."""
    tables = federation.tables
    person_agency = tables["persons"].select("person_id", pl.col("agency_id").alias("_agency"))
    episode_agency = tables["episodes"].select("episode_id", pl.col("agency_id").alias("_agency"))
    tagged = {
        "agencies": tables["agencies"].with_columns(pl.col("agency_id").alias("_agency")),
        "care_managers": tables["care_managers"].with_columns(pl.col("agency_id").alias("_agency")),
        "persons": tables["persons"].with_columns(pl.col("agency_id").alias("_agency")),
        "episodes": tables["episodes"].with_columns(pl.col("agency_id").alias("_agency")),
        "carers": tables["carers"].join(person_agency, on="person_id", how="left", maintain_order="left"),
        "events": tables["events"].join(person_agency, on="person_id", how="left", maintain_order="left"),
        "assessments": tables["assessments"].join(person_agency, on="person_id", how="left", maintain_order="left"),
        "service_plans": tables["service_plans"].join(person_agency, on="person_id", how="left", maintain_order="left"),
        "interventions": tables["interventions"].join(
            episode_agency, on="episode_id", how="left", maintain_order="left"
        ),
    }
    agencies: dict[str, dict[str, pl.DataFrame]] = {a: {} for a in tables["agencies"]["agency_id"].to_list()}
    for entity, frame in tagged.items():
        parts = frame.partition_by("_agency", as_dict=True, include_key=False, maintain_order=True)
        for agency_id in agencies:
            part = parts.get((agency_id,))
            agencies[agency_id][entity] = part if part is not None else frame.clear().drop("_agency")
    return agencies


def _french_csv(frame: pl.DataFrame) -> bytes:
    frame = frame.with_columns(pl.col(pl.Boolean).replace_strict({True: "oui", False: "non"}, return_dtype=pl.String))
    text = frame.write_csv(separator=";", decimal_comma=True, date_format="%d/%m/%Y")
    return text.replace("\n", "\r\n").encode("cp1252")


def _utf8_csv(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_bom=True, date_format="%Y-%m-%d")
    return buffer.getvalue()


def write_landing(federation: Federation, out_dir: Path, progress: Progress | None = None) -> list[Path]:
    """Write every agency's export under ``out_dir/landing/<agency_id>/`` and the ground truth.

    Returns the files written. The ground truth goes beside the landing folder, never in it:
    it is what only the simulation knows.
    """
    say = progress or (lambda _message: None)
    landing = out_dir / "landing"
    written: list[Path] = []
    extract_month = federation.ground_truth["window"]["end"][:7].replace("-", "")
    by_agency = split_by_agency(federation)
    for i, (agency_id, entities) in enumerate(by_agency.items(), start=1):
        export_format = federation.export_format[agency_id]
        folder = landing / agency_id
        folder.mkdir(parents=True, exist_ok=True)
        rows = sum(frame.height for frame in entities.values())
        say(f"[{i}/{len(by_agency)}] {agency_id}: {rows:,} rows as {export_format}")
        if export_format == "xlsx":
            path = folder / f"{landing_file_stem(agency_id, extract_month, 'export')}.xlsx"
            with xlsxwriter.Workbook(path, {"constant_memory": False}) as workbook:
                for entity, frame in entities.items():
                    frame.write_excel(
                        workbook,
                        worksheet=entity,
                        autofilter=False,
                        float_precision=2,
                        dtype_formats={pl.Date: "dd/mm/yyyy"},
                    )
            written.append(path)
            continue
        for entity, frame in entities.items():
            stem = landing_file_stem(agency_id, extract_month, entity)
            if export_format == "parquet":
                path = folder / f"{stem}.parquet"
                frame.write_parquet(path)
            else:
                path = folder / f"{stem}.csv"
                path.write_bytes(_french_csv(frame) if export_format == "csv_cp1252" else _utf8_csv(frame))
            written.append(path)
    truth_path = out_dir / GROUND_TRUTH_FILE
    truth_path.write_text(json.dumps(federation.ground_truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return written
