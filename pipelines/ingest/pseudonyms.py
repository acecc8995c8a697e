"""Re-keying agency pseudonyms with HMAC-SHA-256 under a key kept outside the repository.

An agency's own identifier for a person is never stored: what the warehouse holds is
HMAC(key, agency + value), so the same person in the same agency always gets the same
pseudonym, two agencies' identifiers never collide, and without the key nobody can go back.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from pipelines.settings import project_root

DEMO_KEY = b"parcours-demo-key: public, for synthetic data only"
PSEUDONYM_LENGTH = 32
"""Hex characters kept from the HMAC digest (128 bits)."""


class PseudonymKeyError(RuntimeError):
    pass


def demo_mode(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("PARCOURS_DEMO", "").strip().lower() in {"1", "true", "yes"}


def load_key(env: Mapping[str, str] | None = None) -> bytes:
    """The key from ``PARCOURS_PSEUDONYM_KEY_FILE`` (a file outside the repository), else the demo key
    when ``PARCOURS_DEMO=1``; anything else is an error."""
    env = os.environ if env is None else env
    key_file = env.get("PARCOURS_PSEUDONYM_KEY_FILE", "").strip()
    if key_file:
        path = Path(key_file).expanduser().resolve()
        if path.is_relative_to(project_root()):
            raise PseudonymKeyError(
                f"the pseudonymisation key {path} is inside the repository; keep it outside, where git cannot take it"
            )
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise PseudonymKeyError(f"cannot read the pseudonymisation key file {path}: {exc.strerror}") from None
        if len(key) < 32:
            raise PseudonymKeyError(f"the pseudonymisation key in {path} is shorter than 32 bytes")
        return key
    if demo_mode(env):
        return DEMO_KEY
    raise PseudonymKeyError(
        "no pseudonymisation key: set PARCOURS_PSEUDONYM_KEY_FILE to a file outside the repository holding at "
        "least 32 random bytes (for example `openssl rand -hex 32 > /secure/parcours.key`), or set "
        "PARCOURS_DEMO=1 to use the public demo key with synthetic data"
    )


def pseudonym(key: bytes, agency: str, value: str) -> str:
    message = f"{agency}\x1f{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_LENGTH]


def rekey(values: pl.Series, agency: str, key: bytes, cache: dict[str, str] | None = None) -> pl.Series:
    """Re-key a column; each distinct value is hashed once, and once per run when the same ``cache``
    (this agency's) is passed for every file: a person's identifier is in half a dozen of them."""
    distinct = values.drop_nulls().unique().to_list()
    known = {} if cache is None else cache
    # Same digests as ``pseudonym``; copying a keyed HMAC skips re-deriving the key pads per value.
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    prefix = f"{agency}\x1f".encode()
    for value in distinct:
        if value not in known:
            mac = keyed.copy()
            mac.update(prefix + value.encode())
            known[value] = mac.hexdigest()[:PSEUDONYM_LENGTH]
    mapping = {value: known[value] for value in distinct}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String).alias(values.name)
