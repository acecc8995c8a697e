"""Cross-fitted doubly robust estimation (double/debiased machine learning) of the effect on the treated.

Chernozhukov, Chetverikov, Demirer, Duflo, Hansen, Newey and Robins (2018), *Double/debiased
machine learning for treatment and structural parameters*, Econometrics Journal 21(1), C1-C68,
section 5.1 (the ATT score), with the normalised (Hájek) form of the weights:

    ATT = sum_T (y - e m0(x)) / sum_T e  -  sum_C w (y - e m0(x)) / sum_C w e,   w = p(x) / (1 - p(x))

where ``y`` is an outcome total over an exposure ``e`` (admissions over person-years; ``e = 1``
for a mean outcome), ``m0`` the comparison group's outcome per unit of exposure given the
covariates and ``p`` the propensity score. Both nuisance functions are **cross-fitted**: rows are
split into ``folds`` (within each arm, seeded), and each fold's predictions come from models
fitted on the other folds only, so that flexible learners (gradient boosting) do not overfit the
rows they score. The score is Neyman-orthogonal, so the influence function below gives the
standard error without accounting for the nuisance fits (the theorem's condition: both
nuisances converge faster than n^-1/4 together); ``tests/test_crossfit.py`` checks it against a
bootstrap that refits everything.

The same machinery estimates the doubly robust difference-in-differences (Sant'Anna and Zhao,
2020): there ``y`` is the *change* (the after count minus the before rate times the after
exposure) and ``m0`` the comparison group's change per unit of exposure.

Nuisance learners, pre-specified by the study (``Learners``):

* ``boosting``: scikit-learn's histogram gradient boosting, log loss for the propensity, Poisson
  loss with the exposure as sample weight for rates (a rate fitted with weight ``e`` under Poisson
  deviance is the count model with offset ``log e``), squared error for changes and mean outcomes;
* ``parametric``: the logistic and log-linear (or linear) regressions of ``propensity.py`` and
  ``outcome_model.py``, for small studies.

Every fit runs on **cells** of identical (fold, treatment, covariates) with their totals as
sample weights (``cells.py``), so a million rows cost what their distinct covariate patterns cost.
The folds' fits share nothing and run side by side on the machine's cores (``threads.map_on_cores``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pipelines.impact.cells import group_cells
from pipelines.impact.estimators import Z95, EstimationError
from pipelines.impact.outcome_model import expected, fit_poisson
from pipelines.impact.propensity import fit_logistic, scores
from pipelines.impact.threads import import_boosting, map_on_cores, single_threaded
from pipelines.impact.weights import WeightRule, att_weights

Loss = Literal["poisson", "squared"]
LearnerName = Literal["boosting", "parametric"]

PROPENSITY_FLOOR = 1e-3
"""Cross-fitted scores are kept inside [0.001, 0.999] before any weight is formed: a score of
exactly 0 or 1 from a tree is an artefact of a leaf, not a certainty."""


@dataclass(frozen=True)
class Learners:
    """How the nuisance functions are fitted: fixed in the study file, before any outcome is seen."""

    learner: LearnerName = "boosting"
    folds: int = 5
    seed: int = 0
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 8
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0

    def describe(self) -> str:
        if self.learner == "parametric":
            return f"logistic and log-linear regressions, cross-fitted over {self.folds} folds (seed {self.seed})"
        return (
            f"gradient boosting ({self.max_iter} trees of at most {self.max_leaf_nodes} leaves, learning rate "
            f"{self.learning_rate}), cross-fitted over {self.folds} folds (seed {self.seed})"
        )


def assign_folds(t: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold for every row, balanced within each arm (so every fold has treated and comparison rows)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(t.shape[0], dtype=np.int64)
    for arm in (0, 1):
        rows = np.flatnonzero(t == arm)
        fold[rows[rng.permutation(rows.shape[0])]] = np.arange(rows.shape[0]) % folds
    return fold


def _boosting(settings: Learners, classifier: bool, loss: Loss = "squared") -> Any:
    import_boosting()
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    common = {
        "max_iter": settings.max_iter,
        "learning_rate": settings.learning_rate,
        "max_leaf_nodes": settings.max_leaf_nodes,
        "min_samples_leaf": settings.min_samples_leaf,
        "l2_regularization": settings.l2_regularization,
        "early_stopping": False,
        "random_state": settings.seed,
    }
    if classifier:
        return HistGradientBoostingClassifier(**common)
    return HistGradientBoostingRegressor(loss="poisson" if loss == "poisson" else "squared_error", **common)


def _fit_propensity(x: np.ndarray, t: np.ndarray, n: np.ndarray, settings: Learners) -> object:
    if settings.learner == "parametric":
        return fit_logistic(x, t, n)
    if t.min() == t.max():
        raise EstimationError("a fold's training rows hold a single arm: too few episodes for cross-fitting")
    return _boosting(settings, classifier=True).fit(x, t, sample_weight=n)


def _predict_propensity(model: object, x: np.ndarray) -> np.ndarray:
    if isinstance(model, np.ndarray):
        return scores(x, model)
    return np.asarray(model.predict_proba(x)[:, 1])  # type: ignore[attr-defined]


def _weighted_ols(x: np.ndarray, target: np.ndarray, weight: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Weighted least squares on standardised covariates with a weak ridge on the slopes (as the Poisson fit)."""
    mean = np.average(x, axis=0, weights=weight)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=weight))
    scale = np.where(scale > 0, scale, 1.0)
    design = np.column_stack([np.ones(x.shape[0]), (x - mean) / scale])
    penalty = np.full(design.shape[1], ridge)
    penalty[0] = 0.0
    gram = (design * weight[:, None]).T @ design + np.diag(penalty)
    beta = np.linalg.solve(gram, (design * weight[:, None]).T @ target)
    slopes = beta[1:] / scale
    return np.concatenate([[beta[0] - float(np.sum(slopes * mean))], slopes])


@dataclass(frozen=True)
class _Linear:
    beta: np.ndarray
    loss: Loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.loss == "poisson":
            return expected(x, self.beta, np.ones(x.shape[0]))
        return np.asarray(self.beta[0] + x @ self.beta[1:])


def _fit_outcome(
    x: np.ndarray, total: np.ndarray, exposure: np.ndarray, n: np.ndarray, loss: Loss, settings: Learners
) -> object:
    """A model of the outcome per unit of exposure, fitted on cell totals (exposure as the weight)."""
    rate = total / exposure
    if settings.learner == "parametric":
        if loss == "poisson":
            return _Linear(fit_poisson(x, total, exposure, n), loss)
        return _Linear(_weighted_ols(x, rate, exposure), loss)
    if loss == "poisson" and total.sum() <= 0:
        return _Linear(np.concatenate([[-30.0], np.zeros(x.shape[1])]), "poisson")
    return _boosting(settings, classifier=False, loss=loss).fit(x, rate, sample_weight=exposure)


@dataclass
class CrossFitted:
    """Cross-fitted nuisance predictions for every row."""

    fold: np.ndarray
    propensity: np.ndarray
    settings: Learners


def crossfit_propensity(t: np.ndarray, x: np.ndarray, settings: Learners) -> CrossFitted:
    """Each row's propensity score from a model fitted on the other folds."""
    check_arms(t, settings)
    fold = assign_folds(t, settings.folds, settings.seed)
    ps, _ = _crossfit(t, x, fold, settings, propensity=True, outcome=None)
    assert ps is not None
    return CrossFitted(fold, ps, settings)


def crossfit_outcome(
    total: np.ndarray, exposure: np.ndarray, t: np.ndarray, x: np.ndarray, nuisance: CrossFitted, loss: Loss
) -> np.ndarray:
    """Each row's comparison-group outcome per unit of exposure, from comparison rows of the other folds."""
    _, m0 = _crossfit(t, x, nuisance.fold, nuisance.settings, propensity=False, outcome=(total, exposure, loss))
    assert m0 is not None
    return m0


def crossfit_both(
    total: np.ndarray, exposure: np.ndarray, t: np.ndarray, x: np.ndarray, settings: Learners, loss: Loss
) -> tuple[CrossFitted, np.ndarray]:
    """``crossfit_propensity`` then ``crossfit_outcome`` on the same folds, the same figures, their fits side by
    side: with five folds on two cores each alone leaves a core idle for its last fold."""
    check_arms(t, settings)
    fold = assign_folds(t, settings.folds, settings.seed)
    ps, m0 = _crossfit(t, x, fold, settings, propensity=True, outcome=(total, exposure, loss))
    assert ps is not None
    assert m0 is not None
    return CrossFitted(fold, ps, settings), m0


def check_arms(t: np.ndarray, settings: Learners) -> None:
    if settings.folds < 2:
        raise EstimationError("cross-fitting needs at least 2 folds")
    if min(int(t.sum()), int((1 - t).sum())) < settings.folds:
        raise EstimationError("fewer episodes in an arm than folds: too few for cross-fitting")


def _crossfit(
    t: np.ndarray,
    x: np.ndarray,
    fold: np.ndarray,
    settings: Learners,
    propensity: bool,
    outcome: tuple[np.ndarray, np.ndarray, Loss] | None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The propensity scores and the outcome model's predictions (each when asked) for every row, every fold's
    models fitted on the other folds' cells; all the folds' fits of both run side by side."""
    (found,) = crossfit_designs(iter([lambda: Design(t, x, fold, settings, propensity, outcome)]))
    return found


@dataclass(frozen=True)
class Design:
    """One design's cross-fitting: its rows' arms ``t``, covariates ``x`` and folds, its learners, and what to fit
    (the propensity scores, the outcome model of ``outcome``'s total, exposure and loss, or both)."""

    t: np.ndarray
    x: np.ndarray
    fold: np.ndarray
    settings: Learners
    propensity: bool
    outcome: tuple[np.ndarray, np.ndarray, Loss] | None
    trailing: np.ndarray | None = None
    """A last covariate after ``x``'s, when the design has one (``group_cells``)."""


class _Grouped:
    """A design on its cells (``group_cells``), its folds' fits to run and the predictions they returned."""

    def __init__(self, design: Design) -> None:
        cells = group_cells(design.t, design.x, leading=design.fold, trailing=design.trailing)
        self.settings, self.outcome = design.settings, design.outcome
        self.counts, self.sums = cells.totals(None, *(() if design.outcome is None else design.outcome[:2]))
        self.cells, self.cell_fold = cells, cells.x[:, 0].astype(np.int64)  # the leading column grouped on
        self.cell_x = cells.x[:, 1:]
        # The propensity fits (every row) first: the larger jobs ahead keep both cores busy to the end.
        self.jobs = [("scores", k) for k in range(design.settings.folds) if design.propensity]
        self.jobs += [("predictions", k) for k in range(design.settings.folds) if design.outcome is not None]
        self.found = {kind: np.empty(cells.size) for kind in ("scores", "predictions")}
        self.waiting = len(self.jobs)
        self.propensity = design.propensity

    def fit(self, kind: str, k: int) -> np.ndarray:
        """Fold ``k``'s scores or predictions, from models fitted on the other folds."""
        cells, counts, cell_x = self.cells, self.counts, self.cell_x
        if kind == "scores":
            train = self.cell_fold != k
            model = _fit_propensity(cell_x[train], cells.t[train], counts[train], self.settings)
            return _predict_propensity(model, cell_x[~train])
        assert self.outcome is not None
        totals, exposures = self.sums
        train = (self.cell_fold != k) & (cells.t == 0) & (exposures > 0)
        if not train.any():
            raise EstimationError("a fold has no comparison rows with exposure to fit the outcome model on")
        loss = self.outcome[2]
        model = _fit_outcome(cell_x[train], totals[train], exposures[train], counts[train], loss, self.settings)
        return np.asarray(model.predict(cell_x[self.cell_fold == k]))  # type: ignore[attr-defined]

    def keep(self, kind: str, k: int, predicted: np.ndarray) -> None:
        self.found[kind][self.cell_fold == k] = predicted
        self.waiting -= 1

    def rows(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Every row's scores and predictions (as asked), from its cell's; the cells are let go."""
        index = self.cells.index
        ps = np.clip(self.found["scores"][index], PROPENSITY_FLOOR, 1 - PROPENSITY_FLOOR) if self.propensity else None
        m0 = np.asarray(self.found["predictions"][index]) if self.outcome is not None else None
        del self.cells, self.cell_x, self.counts, self.sums, self.found
        return ps, m0


def crossfit_designs(designs: Iterator[Callable[[], Design]]) -> Iterator[tuple[np.ndarray | None, np.ndarray | None]]:
    """``_crossfit`` of several designs, their folds' fits all in one stream side by side (``map_on_cores``): each
    design's fits are the ones it would run alone, the same predictions, but the cores go from one design's last
    fits to the next design's first instead of one of them waiting for the last fit of each design. A design is
    built (``designs`` gives functions that build them) and grouped into its cells in this thread while the fits
    ahead of it run; its scores and predictions are handed back, and its cells let go, as soon as its fits are in
    (a caller that stops early, on an error of its own, stops the stream). The first error, in the designs' order
    and their fits' order, is the one raised, as one design after the other would raise it. The first design's
    learners set OpenMP's limit in this thread: a stream with boosting designs starts with one."""
    first = _Grouped(next(designs)())

    def jobs() -> Iterator[tuple[_Grouped, str, int]]:
        grouped: _Grouped | BaseException = first
        while True:
            if isinstance(grouped, BaseException):
                yield _Failed(grouped), "", 0  # raised in its turn, after the fits before it
                return
            yield from ((grouped, kind, k) for kind, k in grouped.jobs)
            build = next(designs, None)
            if build is None:
                return
            try:
                grouped = _Grouped(build())
            except Exception as exc:  # raised in its turn, by the job that stands for the design
                grouped = exc

    def run(job: tuple[_Grouped, str, int]) -> tuple[_Grouped, str, int, np.ndarray]:
        grouped, kind, k = job
        return grouped, kind, k, grouped.fit(kind, k)

    with single_threaded(openmp=first.settings.learner == "boosting"):
        for grouped, kind, k, predicted in map_on_cores(run, jobs(), first.cells.size):
            grouped.keep(kind, k, predicted)
            if grouped.waiting == 0:  # its cells go now, not with the last design's
                yield grouped.rows()


class _Failed(_Grouped):
    """A design that could not be built: its one job raises what building it raised."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def fit(self, kind: str, k: int) -> np.ndarray:
        raise self.error


@dataclass
class EffectOnTreated:
    """A cross-fitted doubly robust ATT with its influence function."""

    estimate: float
    standard_error: float
    ci_low: float
    ci_high: float
    treated_value: float
    counterfactual_value: float
    log_ratio: float | None
    """log(treated / counterfactual): the scale negative controls calibrate on (None when undefined)."""
    log_ratio_se: float | None
    weights: np.ndarray
    """The comparison rows' weights after the study's rule (treated rows: 1; excluded rows: 0)."""
    details: dict[str, object] = field(default_factory=dict)
    log_ratio_influence: np.ndarray | None = None
    """Each row's influence on ``log_ratio`` (its variance is the sum of squares, or of cluster sums): two
    estimates on the same rows combine through it, e.g. a main outcome against its negative controls."""
    clusters: np.ndarray | None = None


def doubly_robust_att(
    total: np.ndarray,
    exposure: np.ndarray,
    t: np.ndarray,
    ps: np.ndarray,
    m0: np.ndarray,
    rule: WeightRule,
    scale: float = 1.0,
    clusters: np.ndarray | None = None,
    observed: np.ndarray | None = None,
) -> EffectOnTreated:
    """The normalised AIPW estimate of the ATT per unit of exposure (times ``scale``) and its standard error.

    ``total``: each row's outcome total; ``exposure``: its exposure (1 for mean outcomes); ``m0``:
    the comparison outcome per unit of exposure predicted for the row; ``rule``: trimming and
    truncation of the weights, fixed in advance. ``clusters`` (an agency per row) sums the
    influence function within clusters (a cluster-robust standard error). ``observed``: the treated
    rows' observed totals when ``total`` is a change (difference-in-differences): the treated value
    and the log ratio are then about the level after enrolment, and the counterfactual is that
    level minus the effect.
    """
    weighting = att_weights(t, ps, rule)
    w = weighting.weights
    d = (t == 1) & (w > 0)
    c = (t == 0) & (w > 0)
    if d.sum() < 2 or c.sum() < 2:
        raise EstimationError("fewer than two episodes left in an arm after trimming")
    residual = total - exposure * m0
    b = float(exposure[d].sum())
    dd = float((w * exposure)[c].sum())
    if b <= 0 or dd <= 0:
        raise EstimationError("no exposure left in an arm")
    a_over_b = float(residual[d].sum()) / b
    c_over_d = float((w * residual)[c].sum()) / dd
    theta = a_over_b - c_over_d
    level = total if observed is None else observed
    treated_rate = float(level[d].sum()) / b
    counterfactual = treated_rate - theta
    n = t.shape[0]
    # Influence functions (per row, scaled so that the variance is sum(psi^2)).
    psi_theta = np.where(d, (residual - a_over_b * exposure) / b, 0.0) - np.where(
        c, w * (residual - c_over_d * exposure) / dd, 0.0
    )
    psi_treated = np.where(d, (level - treated_rate * exposure) / b, 0.0)
    se = _standard_error(psi_theta, clusters)
    log_ratio = log_ratio_se = psi_log = None
    if treated_rate > 0 and counterfactual > 0:
        log_ratio = float(np.log(treated_rate / counterfactual))
        # log T - log C with C = T - theta: d/dT = 1/T - 1/C, d/dtheta = 1/C.
        psi_log = psi_treated * (1 / treated_rate - 1 / counterfactual) + psi_theta / counterfactual
        log_ratio_se = _standard_error(psi_log, clusters)
    return EffectOnTreated(
        estimate=scale * theta,
        standard_error=scale * se,
        ci_low=scale * (theta - Z95 * se),
        ci_high=scale * (theta + Z95 * se),
        treated_value=scale * treated_rate,
        counterfactual_value=scale * counterfactual,
        log_ratio=log_ratio,
        log_ratio_se=log_ratio_se,
        weights=w,
        details={"rows": n, **weighting.report()},
        log_ratio_influence=psi_log,
        clusters=clusters,
    )


def log_ratio_difference_se(first: EffectOnTreated, second: EffectOnTreated) -> float | None:
    """Standard error of ``first.log_ratio - second.log_ratio`` for two estimates on the same rows, from
    their influence functions: it counts what they share (the same weights, the same people), which an
    independent sum of variances would count twice."""
    a, b = first.log_ratio_influence, second.log_ratio_influence
    if a is None or b is None or a.shape != b.shape:
        return None
    return _standard_error(a - b, first.clusters)


def proportional_outcome(
    total: np.ndarray, exposure: np.ndarray, t: np.ndarray, reference: np.ndarray, fold: np.ndarray
) -> np.ndarray:
    """A rare outcome's comparison-group rate as a multiple of a reference outcome's cross-fitted rate.

    For each fold, the multiple is the comparison rows' outcome total over their expected reference total on
    the *other* folds (one number: the outcome's share of the reference's risk). A negative control is
    chosen because it shares the main outcome's risk and confounding; a learner fitted on its few events
    alone would shrink towards a constant and carry an error of its own into the calibration.
    """
    out = np.empty(t.shape[0])
    comparison = t == 0
    for k in np.unique(fold):
        train = comparison & (fold != k)
        expected = float((exposure[train] * reference[train]).sum())
        multiple = float(total[train].sum()) / expected if expected > 0 else 0.0
        out[fold == k] = multiple * reference[fold == k]
    return out


def _standard_error(psi: np.ndarray, clusters: np.ndarray | None) -> float:
    if clusters is None:
        return float(np.sqrt(np.sum(psi**2)))
    _, index = np.unique(clusters, return_inverse=True)
    sums = np.bincount(index, psi)
    return float(np.sqrt(np.sum(sums**2)))
