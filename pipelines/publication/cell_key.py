"""The cell-key method (ABS, ONS): a deterministic, bounded perturbation of every released count.

A cell's **key** is a keyed hash (HMAC-SHA-256 under a secret derived from the pseudonymisation
key) of what defines the cell (its population, breakdown, measure) and of its true value: the
same cell with the same count gets the same perturbation in every table and every release, so
averaging or differencing releases gains nothing; a changed count gets a fresh one. The key
selects the perturbation from a **p-table**: for each true value, a distribution of noise between
``-MAX_NOISE`` and ``+MAX_NOISE`` with mean 0 and variance ``NOISE_VARIANCE`` (the maximum-entropy
one, as the ``ptable`` package of the sdcTools project builds them), never giving a value under
``MIN_CELL``. Counts of 1 to 10 are not released at all (the threshold rule); zero is released as 0.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.optimize import minimize

from pipelines.publication.rules import MAGNITUDE_NOISE, MAX_NOISE, MIN_CELL, NOISE_VARIANCE

KEY_CONTEXT = b"parcours cell-key perturbation v1"


def release_secret(pseudonym_key: bytes) -> bytes:
    """The cell keys' secret, derived from the pseudonymisation key (stable across releases, never stored)."""
    return hmac.new(pseudonym_key, KEY_CONTEXT, hashlib.sha256).digest()


def _message(identity: Sequence[str], value: float) -> bytes:
    return "\x1f".join([*identity, repr(value)]).encode()


def cell_key(secret: bytes, identity: Sequence[str], value: float) -> float:
    """A uniform number in [0, 1) fixed by the cell's identity and its true value."""
    digest = hmac.new(secret, _message(identity, value), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def same_noise_as(identity: Sequence[str], value: float) -> str:
    """A name shared by every cell whose noise is the same draw: the same identity and the same (rounded) value,
    in any table of any release. Two such cells are one number to an attacker who has seen either; the auditor
    matches hidden cells with shown ones by it (``pipelines.publication.release.keyed_bounds``). Kept with the
    analysts' copy of a release only (it is a plain hash of the identity and the true value, not keyed)."""
    return hashlib.sha256(_message(identity, value)).hexdigest()[:32]


def magnitude_keyed_value(value: float, digits: int) -> float:
    """The value a magnitude's key is drawn from (its rounding), as ``protect_magnitude`` uses it."""
    return round(float(value), digits)


@dataclass(frozen=True)
class NoiseRow:
    """The distribution of the noise added to one true value: values and their cumulative probabilities."""

    noise: np.ndarray
    cdf: np.ndarray

    def draw(self, key: float) -> int:
        return int(self.noise[min(int(np.searchsorted(self.cdf, key, side="right")), self.noise.size - 1)])

    @property
    def mean(self) -> float:
        return float(np.dot(self.noise, np.diff(self.cdf, prepend=0.0)))

    @property
    def variance(self) -> float:
        p = np.diff(self.cdf, prepend=0.0)
        return float(np.dot(self.noise**2, p) - self.mean**2)


def max_entropy(support: np.ndarray, variance: float) -> np.ndarray:
    """Probabilities on ``support`` with mean 0 and the given variance, of maximum entropy.

    The solution is p(e) ∝ exp(a e + b e²); (a, b) minimise the convex dual
    log Σ exp(a e + b e²) - b·variance.
    """
    if support.size == 1:
        return np.ones(1)

    def dual(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = theta[0] * support + theta[1] * support**2
        shift = logits.max()
        weights = np.exp(logits - shift)
        total = weights.sum()
        p = weights / total
        value = float(np.log(total) + shift - theta[1] * variance)
        gradient = np.array([np.dot(p, support), np.dot(p, support**2) - variance])
        return value, gradient

    solution = minimize(dual, np.zeros(2), jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 500})
    logits = solution.x[0] * support + solution.x[1] * support**2
    p = np.exp(logits - logits.max())
    return p / p.sum()


@cache
def noise_row(value: int, max_noise: int = MAX_NOISE, variance: float = NOISE_VARIANCE) -> NoiseRow:
    """The p-table's row for a true count ``value`` (at least ``MIN_CELL``).

    Near the threshold the support is cut so that no released value falls under ``MIN_CELL``,
    and the variance is lowered to what a mean-0 distribution on that support can have.
    """
    if value < MIN_CELL:
        raise ValueError("counts under the threshold are not perturbed: they are not released")
    low = max(MIN_CELL - value, -max_noise)
    support = np.arange(low, max_noise + 1, dtype=float)
    # A mean-0 distribution on [low, high] has at most the variance -low*high (all mass at both ends).
    reachable = 0.9 * -low * max_noise
    p = max_entropy(support, min(variance, reachable)) if reachable > 0 else (support == 0).astype(float)
    return NoiseRow(support.astype(int), np.cumsum(p))


def protect_count(secret: bytes, identity: Sequence[str], value: int) -> int | None:
    """The released count: 0 for 0, nothing for 1 to 10, the count plus its key's noise from 11 up."""
    if value == 0:
        return 0
    if value < MIN_CELL:
        return None
    return value + noise_row(min(value, MIN_CELL + MAX_NOISE)).draw(cell_key(secret, identity, value))


def protect_magnitude(secret: bytes, identity: Sequence[str], value: float, digits: int = 1) -> float:
    """A sum such as person-years or hours: rounded, plus bounded noise (at most ``MAGNITUDE_NOISE``)
    from the same p-table, so that it cannot stand in for the count it grows with."""
    rounded = magnitude_keyed_value(value, digits)
    row = noise_row(MIN_CELL + MAX_NOISE)
    noise = row.draw(cell_key(secret, identity, rounded)) * MAGNITUDE_NOISE / MAX_NOISE
    return round(max(0.0, rounded + noise), digits)
