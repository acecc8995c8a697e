"""Who may see what: the server-side map from a signed-in user to a role and a scope.

Default deny: a user the map does not name, or a map that cannot be read, gets nothing.
The map is a YAML file outside the repository in production (``PARCOURS_ACCESS_FILE``);
the demo map shipped beside this module is used only in demo mode (``PARCOURS_AUTH=demo``).

    users:
      someone@funder.example: {role: funder}
      someone@agency.example: {role: agency, agency_id: AG003}
      someone@federation.example: {role: analyst}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

Role = Literal["funder", "agency", "analyst"]
DEMO_ACCESS_FILE = Path(__file__).with_name("demo_access.yaml")


class AccessError(RuntimeError):
    """The access map is missing or malformed: everyone is denied, and the page says why."""


class Denied(PermissionError):
    """A viewer asked for data outside their role or scope."""


@dataclass(frozen=True)
class Viewer:
    """A signed-in user with their role and scope. Hashable: cached functions take it as an argument."""

    user: str
    role: Role
    agency_id: str | None = None
    name: str = ""

    @property
    def label(self) -> str:
        scope = f" · {self.agency_id}" if self.agency_id else ""
        return f"{self.name or self.user} ({self.role}{scope})"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    agency_id: str | None = None
    name: str = ""

    @model_validator(mode="after")
    def _scope(self) -> _Entry:
        if (self.role == "agency") != (self.agency_id is not None):
            raise ValueError("an agency user needs an agency_id, and only an agency user has one")
        return self


class _AccessMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: dict[str, _Entry]


def auth_mode(env: Mapping[str, str] | None = None) -> Literal["demo", "oidc"]:
    """``demo`` only when asked for explicitly: production (OIDC through ``st.login``) is the default."""
    env = os.environ if env is None else env
    return "demo" if env.get("PARCOURS_AUTH", "oidc").strip().lower() == "demo" else "oidc"


def access_file(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if env.get("PARCOURS_ACCESS_FILE"):
        return Path(env["PARCOURS_ACCESS_FILE"])
    return DEMO_ACCESS_FILE if auth_mode(env) == "demo" else None


def load_access_map(path: Path | None) -> dict[str, _Entry]:
    if path is None:
        raise AccessError("No access map: set PARCOURS_ACCESS_FILE to the YAML file that names each user's role.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {user.strip().lower(): entry for user, entry in _AccessMap.model_validate(raw).users.items()}
    except FileNotFoundError:
        raise AccessError(f"The access map {path} does not exist.") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise AccessError(f"The access map {path} is not valid: {exc}") from None


def resolve_viewer(user: str | None, access: Mapping[str, _Entry]) -> Viewer | None:
    """The viewer for a signed-in identity, or None (denied) when the map does not name it."""
    if not user:
        return None
    entry = access.get(user.strip().lower())
    if entry is None:
        return None
    return Viewer(user=user.strip().lower(), role=entry.role, agency_id=entry.agency_id, name=entry.name)


def demo_users(access: Mapping[str, _Entry]) -> list[Viewer]:
    return [Viewer(user, e.role, e.agency_id, e.name) for user, e in access.items()]
