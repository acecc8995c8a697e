"""The data contract (``quality/contract.yaml``) as typed objects.

Everything that needs to know what an agency export holds (the generator, the readers, the
raw tables, the contract documentation) asks this module, so the contract lives in one file.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.settings import project_root

FieldType = Literal["string", "integer", "decimal", "date", "month", "boolean"]

DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DOUBLE",
    "date": "DATE",
    "month": "DATE",
    "boolean": "BOOLEAN",
}

POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "decimal": pl.Float64(),
    "date": pl.Date(),
    "month": pl.Date(),
    "boolean": pl.Boolean(),
}


class ContractField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: FieldType
    required: bool
    description: str
    unit: str | None = None
    allowed: tuple[str, ...] | None = None
    allowed_from: str | None = None
    list_separator: str | None = None
    min: float | None = None
    max: float | None = None
    max_length: int = 200
    pseudonym: bool = False
    linkage: bool = False
    """A pseudonym re-keyed without the agency, so that the same value links across agencies."""
    free_text: bool = False

    @model_validator(mode="after")
    def _linkage_is_a_pseudonym(self) -> ContractField:
        if self.linkage and not self.pseudonym:
            raise ValueError(f"{self.name}: a linkage field must also be a pseudonym")
        return self

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]

    @property
    def polars_type(self) -> pl.DataType:
        return POLARS_TYPES[self.type]


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str
    primary_key: tuple[str, ...]
    fields: tuple[ContractField, ...]
    date_order: tuple[tuple[str, str], ...] = ()

    @model_validator(mode="after")
    def _primary_key_is_a_field(self) -> Entity:
        names = {f.name for f in self.fields}
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"primary key {missing} not among the fields")
        dates = {f.name for f in self.fields if f.type in ("date", "month")}
        for earlier, later in self.date_order:
            if earlier not in dates or later not in dates:
                raise ValueError(f"date_order ({earlier}, {later}) must name two date fields")
        if len(names) != len(self.fields):
            raise ValueError("duplicate field names")
        return self

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> ContractField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    entities: dict[str, Entity]

    @model_validator(mode="after")
    def _name_entities(self) -> Contract:
        for name, entity in self.entities.items():
            object.__setattr__(entity, "name", name)
        return self

    def entity(self, name: str) -> Entity:
        try:
            return self.entities[name]
        except KeyError:
            raise KeyError(f"the contract has no entity {name!r}; it has {sorted(self.entities)}") from None


def default_contract_path() -> Path:
    return project_root() / "quality" / "contract.yaml"


@cache
def load_contract(path: Path | None = None) -> Contract:
    path = path or default_contract_path()
    with path.open(encoding="utf-8") as handle:
        return Contract.model_validate(yaml.safe_load(handle))


@cache
def reference_codes(table: str) -> tuple[str, ...]:
    """Codes of a reference table under ``data/reference/`` (its ``code`` column)."""
    path = project_root() / "data" / "reference" / f"{table}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return tuple(row["code"] for row in csv.DictReader(handle))


def allowed_values(field: ContractField) -> tuple[str, ...] | None:
    if field.allowed is not None:
        return field.allowed
    if field.allowed_from is not None:
        return reference_codes(field.allowed_from)
    return None


def render_markdown(contract: Contract) -> str:
    """The human-readable contract, ``docs/data-contract.md``."""
    lines = [
        "# Data contract",
        "",
        f"**Version {contract.version}.** Generated from `quality/contract.yaml` by "
        "`parcours contract-doc`; edit the YAML, never this page.",
        "",
        "Each member agency sends one file per entity (CSV, XLSX sheet named after the entity, "
        "Parquet or JSON Lines) with the columns below, in any order. All identifiers are "
        "pseudonyms chosen by the agency: no name, social-security number, address, phone, "
        "e-mail or full birth date may appear in any file.",
        "",
        "Types: `string`; `integer`; `decimal` (a decimal comma is accepted in semicolon CSV); "
        "`date` (ISO `yyyy-mm-dd` or `dd/mm/yyyy`, or an Excel date cell); `month` (the first "
        "day of the month); `boolean` (`true`/`false`, `1`/`0`, `oui`/`non`, `yes`/`no`, "
        "`vrai`/`faux`). Events cover at least the 24 months before each episode starts.",
        "",
    ]
    for name, entity in contract.entities.items():
        lines += [f"## `{name}`", "", " ".join(entity.description.split()), ""]
        lines += [f"Primary key: {', '.join(f'`{k}`' for k in entity.primary_key)}.", ""]
        if entity.date_order:
            pairs = "; ".join(f"`{b}` not before `{a}`" for a, b in entity.date_order)
            lines += [f"Date order: {pairs}.", ""]
        lines += ["| field | type | unit | required | allowed values | description |"]
        lines += ["|---|---|---|---|---|---|"]
        for f in entity.fields:
            if f.allowed is not None:
                allowed = ", ".join(f"`{v}`" for v in f.allowed)
                if f.list_separator:
                    allowed += f" (several, separated by `{f.list_separator}`)"
            elif f.allowed_from is not None:
                allowed = f"a code of `data/reference/{f.allowed_from}.csv`"
            elif f.min is not None or f.max is not None:
                allowed = f"{_num(f.min)} to {_num(f.max)}"
            else:
                allowed = ""
            description = " ".join(f.description.split()).replace("|", "\\|")
            if f.linkage:
                description += (
                    " *Linkage pseudonym: re-keyed (HMAC-SHA-256) without the agency before it is stored, so that "
                    "it links the same person across agencies.*"
                )
            elif f.pseudonym:
                description += " *Pseudonym: re-keyed (HMAC-SHA-256) before it is stored.*"
            if f.free_text:
                description += f" *Free text, at most {f.max_length} characters, scanned by the privacy guard.*"
            lines.append(
                f"| `{f.name}` | {f.type} | {f.unit or ''} | {'yes' if f.required else 'no'} "
                f"| {allowed} | {description} |"
            )
        lines.append("")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "…"
    return str(int(value)) if float(value).is_integer() else str(value)
