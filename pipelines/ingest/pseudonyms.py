"""Re-keying agency pseudonyms with HMAC-SHA-256 under a key kept outside the repository.

An agency's own identifier for a person is never stored: what the warehouse holds is
HMAC(key, agency + value), so the same person in the same agency always gets the same
pseudonym, two agencies' identifiers never collide, and without the key nobody can go back.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import os
import zlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from pipelines.settings import project_root

DEMO_KEY = b"parcours-demo-key: public, for synthetic data only"
PSEUDONYM_LENGTH = 32
"""Hex characters kept from the HMAC digest (128 bits)."""


MIN_KEY_BYTES = 32
MIN_KEY_BITS = 128
"""A key must carry at least this much entropy, estimated from its own bytes (a hex key of 32 random
bytes carries about 256 bits; ``secret-secret-secret-...`` much less)."""


class PseudonymKeyError(RuntimeError):
    pass


def key_weakness(key: bytes) -> str | None:
    """Why ``key`` is unfit to pseudonymise real data, or None. Never quotes the key.

    Refused: the public demo key (in any case or spacing), keys under 32 bytes, keys with few distinct
    bytes (all zeros), keys that repeat a shorter pattern or run in sequence (``abcdef...``), and keys
    whose estimated entropy is under 128 bits or that compress well.
    """
    if key.strip().lower() == DEMO_KEY.lower() or DEMO_KEY.lower() in key.lower():
        return "it is the public demo key, fit for synthetic data only"
    if len(key) < MIN_KEY_BYTES:
        return f"it is shorter than {MIN_KEY_BYTES} bytes"
    counts = Counter(key)
    if len(counts) < 8:
        return f"it uses only {len(counts)} distinct byte values"
    for period in range(1, len(key) // 2 + 1):
        if all(key[i] == key[i % period] for i in range(len(key))):
            return f"it repeats a pattern of {period} bytes"
    steps = [b - a for a, b in itertools.pairwise(key)]
    if sum(1 for step in steps if abs(step) <= 1) > len(steps) // 2:
        return "most of its bytes follow each other in sequence"
    bits = -sum(n * math.log2(n / len(key)) for n in counts.values())
    if bits < MIN_KEY_BITS:
        return f"its estimated entropy is {bits:.0f} bits, under {MIN_KEY_BITS}"
    if len(zlib.compress(key, 9)) < len(key) // 2:
        return "it compresses to less than half its size: it is not random"
    return None


def demo_mode(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("PARCOURS_DEMO", "").strip().lower() in {"1", "true", "yes"}


def load_key(env: Mapping[str, str] | None = None) -> bytes:
    """The key from ``PARCOURS_PSEUDONYM_KEY_FILE`` (a file outside the repository), else the demo key
    when ``PARCOURS_DEMO=1``; anything else is an error. Outside demo mode a weak key
    (``key_weakness``), the demo key's text among them, is refused."""
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
        weakness = key_weakness(key)
        if weakness is not None and not demo_mode(env):
            raise PseudonymKeyError(
                f"the pseudonymisation key in {path} is refused: {weakness}. Generate one with "
                "`openssl rand -hex 32 > /secure/parcours.key`"
            )
        return key  # in demo mode any key will do: the data is synthetic
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


HMAC_BLOCK = 64
"""SHA-256's block size: an HMAC key longer than this is hashed first, a shorter one padded with zeros."""


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of HMAC-SHA-256 (RFC 2104): HMAC(K, m) = H(opad || H(ipad || m)).
    Passed to the engine as bound parameters, never written into SQL."""
    block = (hashlib.sha256(key).digest() if len(key) > HMAC_BLOCK else key).ljust(HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def keyed_hash_sql(value: str, scope: str = "$hmac_scope") -> str:
    """``pseudonym`` as a DuckDB expression on the text column ``value``, for every row at once in the
    engine: the same HMAC-SHA-256, byte for byte (UTF-8 of scope, unit separator, value), the same 128
    bits in hex. Parameters: ``$hmac_inner`` and ``$hmac_outer`` (``hmac_pads``), ``$hmac_scope`` (the
    agency, or the federation for linkage pseudonyms) unless ``scope`` names another text expression (a
    column, when one statement re-keys fields of both scopes)."""
    message = f"encode({scope} || chr(31) || {value})"
    return f"left(sha256($hmac_outer || unhex(sha256($hmac_inner || {message}))), {PSEUDONYM_LENGTH})"


def keyed_hash_parameters(key: bytes, scope: str | None) -> dict[str, bytes | str]:
    """The parameters of ``keyed_hash_sql``; without ``scope`` (given by the query), the padded keys only."""
    inner, outer = hmac_pads(key)
    pads: dict[str, bytes | str] = {"hmac_inner": inner, "hmac_outer": outer}
    return pads if scope is None else {**pads, "hmac_scope": scope}


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
