"""Per-agency reading overrides, from an optional ``agencies.yaml`` beside the landing folders.

Detection works for what agencies usually send; an override fixes what it gets wrong::

    agencies:
      AG001:
        encoding: cp1252        # utf-8, cp1252 or latin-1
        delimiter: ";"
        decimal_comma: true
        sheets: {Feuil1: persons}   # XLSX sheet name -> entity
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_MAX_FILE_MB = 2048


class AgencyOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoding: Literal["utf-8", "cp1252", "latin-1"] | None = None
    delimiter: Literal[";", ",", "\t", "|"] | None = None
    decimal_comma: bool | None = None
    sheets: dict[str, str] = Field(default_factory=dict)


class AgenciesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agencies: dict[str, AgencyOverride] = Field(default_factory=dict)


class ReadOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    encoding: str | None = None
    delimiter: str | None = None
    decimal_comma: bool | None = None
    sheet_entities: dict[str, str] = Field(default_factory=dict)
    max_file_bytes: int = DEFAULT_MAX_FILE_MB * 1024 * 1024


class ConfigError(ValueError):
    pass


def max_file_bytes() -> int:
    value = os.environ.get("PARCOURS_MAX_FILE_MB", "").strip()
    try:
        return int(float(value) * 1024 * 1024) if value else DEFAULT_MAX_FILE_MB * 1024 * 1024
    except ValueError:
        raise ConfigError(f"PARCOURS_MAX_FILE_MB must be a number of megabytes, got {value!r}") from None


def load_agencies_config(path: Path | None) -> AgenciesConfig:
    if path is None or not path.exists():
        return AgenciesConfig()
    try:
        return AgenciesConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a valid agencies configuration: {exc}") from None


def options_for(agency: str, config: AgenciesConfig) -> ReadOptions:
    override = config.agencies.get(agency, AgencyOverride())
    return ReadOptions(
        encoding=override.encoding,
        delimiter=override.delimiter,
        decimal_comma=override.decimal_comma,
        sheet_entities=override.sheets,
        max_file_bytes=max_file_bytes(),
    )
