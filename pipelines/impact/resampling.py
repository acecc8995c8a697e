"""Bootstrap draws within arms: the plain bootstrap, and the bag of little bootstraps at scale.

The plain bootstrap refits every model on ``n`` rows drawn with replacement, a thousand times:
at a million rows that is minutes of work even on cell totals. Above ``BLB_FROM`` rows the
draws come from the bag of little bootstraps (Kleiner, Talwalkar, Sarkar and Jordan, 2014,
JRSS B 76(4)): ``BLB_SUBSETS`` random subsets of ``b`` rows per arm (``b = n^0.7``, at least
``BLB_MIN_SUBSET``), each resampled with multinomial weights that add up to the arm's full
size, so that every refit sees a sample of the real size while touching only ``b`` rows.
Each subset's draws are re-centred on the full-sample estimate (draw - subset estimate +
estimate) and pooled, so that percentile intervals, standard errors and the funder figures
read them as they read a plain bootstrap. Both resample within arms (so both stay populated)
and are seeded.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from pipelines.impact.threads import map_on_cores

BLB_FROM = 50_000
"""Rows from which intervals come from the bag of little bootstraps (below: the plain bootstrap)."""
BLB_SUBSETS = 10
BLB_EXPONENT = 0.7
BLB_MIN_SUBSET = 5_000
"""Rows per arm in a subset at least (the models need room), or the whole arm when smaller."""

Value = TypeVar("Value", float, np.ndarray)
Estimator = Callable[[np.ndarray, np.ndarray | None], Value]
"""``(rows, weights)`` -> the estimate on those rows; ``weights`` None means each row once (rows may repeat)."""
Draw = tuple[np.ndarray, np.ndarray | None]
"""One resample: the rows drawn and how many times each counts (None: once each; rows may repeat)."""
BatchEstimator = Callable[[list[Draw]], np.ndarray]
"""Several resamples -> their estimates stacked along the first axis."""


def resample_within_arms(rng: np.random.Generator, treated: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Row indices of one bootstrap resample drawn within each arm (``treated``, ``control``: each arm's rows), so
    both arms stay populated. The arms are found once per bootstrap by the caller, not once per resample."""
    return np.concatenate([rng.choice(treated, treated.shape[0]), rng.choice(control, control.shape[0])])


def subset_size(arm_rows: int) -> int:
    return min(arm_rows, max(math.ceil(arm_rows**BLB_EXPONENT), BLB_MIN_SUBSET))


def uses_little_bootstraps(rows: int) -> bool:
    return rows >= BLB_FROM


def describe(rows: int, resamples: int, seed: int) -> str:
    if not uses_little_bootstraps(rows):
        return f"{resamples} resamples within arms, seed {seed}"
    return (
        f"bag of little bootstraps: {resamples} resamples over {BLB_SUBSETS} subsets of n^{BLB_EXPONENT} rows "
        f"per arm, within arms, seed {seed}"
    )


def bootstrap_draws(
    t: np.ndarray, estimator: Estimator[Value], point: Value, resamples: int, seed: int, little: bool | None = None
) -> np.ndarray:
    """``resamples`` draws of ``estimator`` (stacked along the first axis); ``point`` is its full-sample value.

    ``little`` forces (True) or forbids (False) the bag of little bootstraps; by default it is
    used from ``BLB_FROM`` rows.
    """

    def one_by_one(draws: list[Draw]) -> np.ndarray:
        return np.stack([np.asarray(estimator(rows, weights)) for rows, weights in draws])

    # The batch size changes no draw (they come from the generator in the same order); a few dozen per job
    # keeps the threads' hand-offs rare beside small estimators.
    return batched_bootstrap_draws(t, one_by_one, np.asarray(point), resamples, seed, little, batch=25)


def batched_bootstrap_draws(
    t: np.ndarray,
    estimator: BatchEstimator,
    point: np.ndarray,
    resamples: int,
    seed: int,
    little: bool | None = None,
    batch: int = 100,
) -> np.ndarray:
    """``bootstrap_draws`` with an estimator that takes up to ``batch`` resamples at a time (``(rows, weights)``
    pairs) and returns their values stacked: the same resamples, drawn from the same seed in the same order
    (the estimator draws no random number), so the same draws for an estimator that gives the same values.

    The batches are estimated side by side on the machine's cores (``threads.map_on_cores``), while the
    resamples are drawn here, in order, from the one generator: ``estimator`` must be safe to call from
    several threads at once (it reads what it closes over and writes only what it returns).
    """
    draws = np.empty((resamples, *np.shape(point)))
    jobs = _bootstrap_jobs(t, resamples, np.random.default_rng(seed), little, batch)
    centres: dict[int, np.ndarray] = {}
    for job, values in _estimated(jobs, lambda job: estimator(job.draws), t.shape[0]):
        if job.first is None:
            centres[job.subset] = values[0]
        elif job.subset < 0:
            draws[job.first : job.first + len(job.draws)] = values
        else:
            draws[job.first : job.first + len(job.draws)] = values - centres[job.subset] + point
    return draws


@dataclass(frozen=True)
class _Job:
    """Resamples to estimate together: a batch of draws going to ``first`` onwards (of the little bootstrap's
    ``subset``, or of the plain bootstrap when ``subset`` is -1), or a subset's centre when ``first`` is None."""

    draws: list[Draw]
    subset: int
    first: int | None


def _estimated(
    jobs: Iterator[_Job], work: Callable[[_Job], np.ndarray], rows: int
) -> Iterator[tuple[_Job, np.ndarray]]:
    """Each job with its values, in order; the jobs estimated side by side. A subset's centre is its first job,
    so it is known before that subset's draws come back."""
    taken: deque[_Job] = deque()

    def remembered() -> Iterator[_Job]:
        for job in jobs:
            taken.append(job)
            yield job

    for values in map_on_cores(work, remembered(), rows):
        yield taken.popleft(), values


def _bootstrap_jobs(
    t: np.ndarray, resamples: int, rng: np.random.Generator, little: bool | None, batch: int
) -> Iterator[_Job]:
    arms = [np.flatnonzero(t == arm) for arm in (1, 0)]
    if not (uses_little_bootstraps(t.shape[0]) if little is None else little):
        for first in range(0, resamples, batch):
            count = min(batch, resamples - first)
            yield _Job([(resample_within_arms(rng, *arms), None) for _ in range(count)], -1, first)
        return
    per_subset = np.full(BLB_SUBSETS, resamples // BLB_SUBSETS)
    per_subset[: resamples % BLB_SUBSETS] += 1
    b = 0
    for number, in_subset in enumerate(per_subset):
        subset = [rng.choice(rows, subset_size(rows.shape[0]), replace=False) for rows in arms]
        rows = np.concatenate(subset)
        even = np.concatenate([np.full(s.shape[0], a.shape[0] / s.shape[0]) for s, a in zip(subset, arms, strict=True)])
        yield _Job([(rows, even)], number, None)
        for first in range(0, int(in_subset), batch):
            count = min(batch, int(in_subset) - first)
            drawn: list[Draw] = []
            for _ in range(count):
                weights = np.concatenate(
                    [
                        rng.multinomial(a.shape[0], np.full(s.shape[0], 1.0 / s.shape[0])).astype(float)
                        for s, a in zip(subset, arms, strict=True)
                    ]
                )
                kept = weights > 0
                drawn.append((rows[kept], weights[kept]))
            yield _Job(drawn, number, b)
            b += count
