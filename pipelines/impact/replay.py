"""Replay of calibration and publication rules on stored validation results.

A validation federation costs about ten CPU-seconds per study; a rule that changes only the arithmetic
*after* estimation (how the negative controls' spread is taken, which quantile, when the gate refuses)
can be judged on the federations already measured, exactly, from what each results row stores
(``validation._ingredients``): the main log rate ratio, the composite control's log rate ratio (the
systematic error's mean), each control's estimate and standard error, the fitted spread, the treated
rate, the failed checks and EASE.

One quantity is not stored: the standard error of the main log rate ratio minus the composite's, from
their joint influence function. It is recovered exactly from the published interval: the interval is
``centre +/- Z95 * sqrt(difference_se^2 + sd^2)`` on the log scale (sd the spread the interval was widened
by: the fitted one, or under a study's prior the posterior one, stored as ``systematic_interval_sd``),
turned into differences with the treated rate (difference = treated x (1 - 1/RR)), a monotone map that can
be inverted (``log RR = -log(1 - difference / treated)``). ``replay(row, CURRENT)`` must then give back the stored
interval (``tests/test_replay.py``): that is what makes the other rules' figures exact.

The spread's posterior under a prior is computed by ``calibration.spread_posterior_rms``, the function the
pipeline calibrates with when a study sets ``calibration.spread_prior_scale``: ``spread_prior_scaled(tau)``
replayed on rows of the maximum-likelihood code is the rule a study version with that scale publishes.

Every rule here was fixed before its figures were seen, from the diagnosis in docs/validation.md
("Replay of calibration rules"); none has a constant fitted to these federations. Run with
``python -m pipelines.impact.validation --replay RULE ... --out DIR``.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from pipelines.impact.calibration import (
    SystematicError,
    calibrate_difference,
    difference_from_ratio,
    spread_negative_log_likelihood,
    spread_posterior_rms,
    widening_spread,
    with_spread_prior,
)
from pipelines.impact.estimators import Z95

COMPOSITE_KEY = "negative_controls_composite"
EASE_CHECK = "expected_absolute_systematic_error"
DEFAULT_MAX_EASE = 0.25
"""Both studies' ``diagnostics.max_ease`` (data/studies/*.yaml) when the rows were measured."""


@dataclass(frozen=True)
class Ingredients:
    """What one validation row says about one study on one federation, on the log rate-ratio scale."""

    study: str
    world: str
    null: bool
    seed: int
    truth: float
    treated_value: float
    log_ratio: float
    composite: float
    composite_se: float
    spread: float
    """The maximum-likelihood spread of the controls around the composite (EASE's)."""
    difference_se: float
    controls: tuple[tuple[float, float], ...]
    publishable: bool
    failed: tuple[str, ...]
    ease: float | None
    stored: tuple[float, float, float]
    """The stored (estimate, ci_low, ci_high) of the published interval, in the study's unit."""
    uncalibrated: tuple[float, float, float]
    interval_spread: float | None = None
    """The spread's posterior RMS, when the row's study set a prior on it: the interval was widened by the larger of
    it and ``spread`` (``SystematicError.interval_sd``)."""
    spread_prior_scale: float | None = None


@dataclass(frozen=True)
class Replayed:
    estimate: float
    ci_low: float
    ci_high: float
    publishable: bool

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    def covers(self, truth: float) -> bool:
        return self.ci_low <= truth <= self.ci_high


def log_ratio_of_difference(treated_value: float, difference: float) -> float:
    """The log rate ratio that ``difference_from_ratio`` turns into ``difference`` for this treated rate."""
    return -math.log1p(-difference / treated_value)


def ingredients(row: Mapping[str, Any]) -> Ingredients | None:
    """The row's ingredients, or None when the study was not estimated or not calibrated."""
    needed = ("estimate", "ci_low", "ci_high", "log_ratio", "treated_value", "systematic_mean", "systematic_sd")
    if any(row.get(k) is None for k in needed) or not row.get("controls"):
        return None
    treated = float(row["treated_value"])
    low = log_ratio_of_difference(treated, row["ci_low"])
    high = log_ratio_of_difference(treated, row["ci_high"])
    spread = float(row["systematic_sd"])
    interval_spread = row.get("systematic_interval_sd")
    widened_by = widening_spread(spread, None if interval_spread is None else float(interval_spread))
    calibrated_se = (high - low) / (2 * Z95)
    controls = tuple(
        (float(v[0]), float(v[1]))
        for k, v in row["controls"].items()
        if k != COMPOSITE_KEY and v[0] is not None and v[1] is not None and math.isfinite(v[0]) and v[1] > 0
    )
    return Ingredients(
        study=row["study"], world=row["scenario"], null=bool(row["null"]), seed=int(row["seed"]),
        truth=float(row["truth"]), treated_value=treated, log_ratio=float(row["log_ratio"]),
        composite=float(row["systematic_mean"]), composite_se=float(row["systematic_mean_se"]), spread=spread,
        difference_se=math.sqrt(max(calibrated_se**2 - widened_by**2, 0.0)), controls=controls,
        publishable=bool(row["publishable"]), failed=tuple(f for f in (row.get("failed") or "").split(",") if f),
        ease=row.get("ease"), stored=(row["estimate"], row["ci_low"], row["ci_high"]),
        uncalibrated=(row["uncalibrated_estimate"], row["uncalibrated_ci_low"], row["uncalibrated_ci_high"]),
        interval_spread=None if interval_spread is None else float(interval_spread),
        spread_prior_scale=row.get("spread_prior_scale"),
    )  # fmt: skip


# --- pure pieces of the rules ------------------------------------------------------------------------


def _controls_arrays(controls: Iterable[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(controls)
    return np.array([e for e, _ in pairs], dtype=float), np.array([s for _, s in pairs], dtype=float)


def spread_upper_bound(mean: float, log_rr: np.ndarray, se: np.ndarray, level: float = 0.95) -> float:
    """Upper end of the profile-likelihood interval of the spread around a given mean: the largest sd whose
    log-likelihood is within chi2_1(level) / 2 of the maximum (two-sided ``level``)."""
    grid_top = max(float(np.max(np.abs(log_rr - mean))), float(np.max(se)), 1e-3) * 10
    best = optimize.minimize_scalar(
        lambda s: float(spread_negative_log_likelihood(s, mean, log_rr, se)), bounds=(0.0, grid_top), method="bounded"
    )
    floor = min(float(best.fun), float(spread_negative_log_likelihood(0.0, mean, log_rr, se)))
    start = float(best.x) if float(best.fun) <= floor else 0.0
    cut = stats.chi2.ppf(level, 1) / 2

    def above(s: float) -> float:
        return float(spread_negative_log_likelihood(s, mean, log_rr, se)) - floor - cut

    return float(optimize.brentq(above, start, grid_top, xtol=1e-12))


def prior_scale_from_max_ease(max_ease: float) -> float:
    """A half-normal scale that puts 95% of the prior on spreads whose EASE (sd x sqrt(2/pi) for a centred
    error) the study declares acceptable: P(sd x sqrt(2/pi) <= max_ease) = 0.95."""
    return max_ease / math.sqrt(2 / math.pi) / Z95


# --- the rules ---------------------------------------------------------------------------------------

Rule = Callable[[Ingredients], Replayed]


def _interval(row: Ingredients, spread: float, quantile: float = Z95) -> tuple[float, float, float]:
    centre = row.log_ratio - row.composite
    log_scale = (centre, centre - quantile * spread, centre + quantile * spread)
    return tuple(difference_from_ratio(row.treated_value, math.exp(v)) for v in log_scale)  # type: ignore[return-value]


def _calibrated(row: Ingredients, error: SystematicError) -> Replayed:
    calibrated = calibrate_difference(row.log_ratio, error, row.difference_se)
    log_scale = (calibrated.log_rr, calibrated.ci_low, calibrated.ci_high)
    estimate, low, high = (difference_from_ratio(row.treated_value, math.exp(v)) for v in log_scale)
    return Replayed(estimate, low, high, row.publishable)


def _fitted_error(row: Ingredients) -> SystematicError:
    return SystematicError(row.composite, row.spread, len(row.controls), row.composite_se)


def current(row: Ingredients) -> Replayed:
    """The rule of the code and study version that measured the row (``study._calibrate``): the main minus the
    composite, +/- Z95 sqrt(difference_se^2 + sd^2), sd the maximum-likelihood spread, or the posterior one
    when the row's study set a prior."""
    error = _fitted_error(row)
    if row.interval_spread is not None:
        error = SystematicError(row.composite, row.spread, len(row.controls), row.composite_se,
                                row.spread_prior_scale, row.interval_spread)  # fmt: skip
    return _calibrated(row, error)


def fitted_spread(row: Ingredients) -> Replayed:
    """The maximum-likelihood spread alone, whatever the row's study version set: the rule before the prior, on
    rows measured by study versions with one."""
    return _calibrated(row, _fitted_error(row))


def uncalibrated(row: Ingredients) -> Replayed:
    """The uncalibrated interval, published under the same verdicts (a reference: never a candidate)."""
    return Replayed(*row.uncalibrated, row.publishable)


def t_quantile(row: Ingredients) -> Replayed:
    """Student's t with k - 1 degrees of freedom (k controls) in place of the normal quantile: the spread is
    estimated from k controls."""
    quantile = float(stats.t.ppf(0.975, max(len(row.controls) - 1, 1)))
    return Replayed(*_interval(row, math.hypot(row.difference_se, row.spread), quantile), row.publishable)


def spread_upper(row: Ingredients) -> Replayed:
    """The spread at the upper end of its 95% profile-likelihood interval (what the controls cannot exclude)."""
    log_rr, se = _controls_arrays(row.controls)
    spread = spread_upper_bound(row.composite, log_rr, se)
    return Replayed(*_interval(row, math.hypot(row.difference_se, spread)), row.publishable)


def spread_prior(row: Ingredients, max_ease: float = DEFAULT_MAX_EASE) -> Replayed:
    """The spread's posterior root mean square under a half-normal prior scaled on the study's ``max_ease``
    (``prior_scale_from_max_ease``): the spread's uncertainty counted instead of its boundary estimate."""
    log_rr, se = _controls_arrays(row.controls)
    spread = spread_posterior_rms(row.composite, log_rr, se, prior_scale_from_max_ease(max_ease))
    return Replayed(*_interval(row, math.hypot(row.difference_se, spread)), row.publishable)


def ease_always(row: Ingredients, max_ease: float = DEFAULT_MAX_EASE) -> Replayed:
    """The current interval; the gate judges EASE whether or not the controls could detect ``max_ease``."""
    replayed = current(row)
    judged_ok = row.ease is not None and row.ease <= max_ease
    return Replayed(replayed.estimate, replayed.ci_low, replayed.ci_high, row.publishable and judged_ok)


def spread_prior_scaled(prior_scale: float) -> Rule:
    """``spread_prior`` with a half-normal prior of scale ``prior_scale`` given outright: the calibration of a
    study version that sets ``calibration.spread_prior_scale`` (through ``calibration.with_spread_prior`` and
    ``calibrate_difference``, as ``study._calibrate`` does); the gate's verdict is the row's."""

    def rule(row: Ingredients) -> Replayed:
        log_rr, se = _controls_arrays(row.controls)
        return _calibrated(row, with_spread_prior(_fitted_error(row), log_rr, se, prior_scale))

    return rule


def spread_prior_alone(prior_scale: float) -> Rule:
    """The posterior spread alone, even below the fitted one: the rule replayed on run 3 before the floor at the
    fitted spread (``SystematicError.interval_sd``) was added (kept to compare the two)."""

    def rule(row: Ingredients) -> Replayed:
        log_rr, se = _controls_arrays(row.controls)
        spread = spread_posterior_rms(row.composite, log_rr, se, prior_scale)
        return Replayed(*_interval(row, math.hypot(row.difference_se, spread)), row.publishable)

    return rule


RULES: dict[str, Rule] = {
    "current": current,
    "fitted_spread": fitted_spread,
    "uncalibrated": uncalibrated,
    "t_quantile": t_quantile,
    "spread_upper": spread_upper,
    "spread_prior": spread_prior,
    "ease_always": ease_always,
}
"""Rules by name; ``spread_prior:SCALE`` gives ``spread_prior_scaled(SCALE)``, ``spread_prior_alone:SCALE``
``spread_prior_alone(SCALE)`` (``rule_named``)."""


def rule_named(name: str) -> Rule:
    base, _, parameter = name.partition(":")
    if base == "spread_prior" and parameter:
        return spread_prior_scaled(float(parameter))
    if base == "spread_prior_alone" and parameter:
        return spread_prior_alone(float(parameter))
    if base not in RULES or parameter:
        raise ValueError(
            f"unknown replay rule {name!r}; known: {', '.join(RULES)}, spread_prior:SCALE, spread_prior_alone:SCALE"
        )
    return RULES[base]


# --- the figures -------------------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes out of n."""
    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - tail, k + 1, n - k))
    return low, high


@dataclass
class WorldFigures:
    federations: int = 0
    publishable: int = 0
    excluding_zero: int = 0
    """Published intervals that exclude zero (false effects in a null world, detected ones in an effect world)."""
    covering: int = 0
    width_ratio: list[float] | None = None

    def add(self, row: Ingredients, replayed: Replayed, reference: Replayed) -> None:
        self.federations += 1
        if not replayed.publishable:
            return
        self.publishable += 1
        self.excluding_zero += replayed.excludes_zero
        self.covering += replayed.covers(row.truth)
        reference_width = reference.ci_high - reference.ci_low
        if reference_width > 0:
            self.width_ratio = [*(self.width_ratio or []), (replayed.ci_high - replayed.ci_low) / reference_width]

    @property
    def median_width_ratio(self) -> float | None:
        return float(np.median(self.width_ratio)) if self.width_ratio else None


def replay_figures(rows: Iterable[Ingredients], rule: Rule) -> dict[tuple[str, bool, str], WorldFigures]:
    """Per (study, null, world): the rule's publishable count, intervals excluding zero, coverage, and the
    median width against the current rule's."""
    figures: dict[tuple[str, bool, str], WorldFigures] = defaultdict(WorldFigures)
    for row in rows:
        figures[(row.study, row.null, row.world)].add(row, rule(row), current(row))
    return dict(figures)


def _percent(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}%" if n else "-"


def replay_table(rows: list[Ingredients], rules: list[str]) -> str:
    """Markdown: per rule and study, the null worlds' false publications (overall and the worst world, exact
    binomial intervals, worlds above 5%), publishable share, and the effect worlds' coverage and detections."""
    lines = [
        "| rule | study | null federations | false publications | exact 95% | worlds above 5% | worst world "
        "| publishable (null) | effect federations | publishable (effect) | published covering truth "
        "| published excluding 0 (effect) | width / current |",
        "|---|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in rules:
        figures = replay_figures(rows, rule_named(name))
        for study in sorted({s for s, _, _ in figures}, key=lambda s: (s != "unplanned_hospitalisations", s)):
            null = {w: f for (s, n, w), f in figures.items() if s == study and n}
            effect = [f for (s, n, _), f in figures.items() if s == study and not n]
            n_null = sum(f.federations for f in null.values())
            false = sum(f.excluding_zero for f in null.values())
            low, high = clopper_pearson(false, n_null) if n_null else (math.nan, math.nan)
            above = [f"{w} {f.excluding_zero}/{f.federations}" for w, f in sorted(null.items())
                     if f.excluding_zero > 0.05 * f.federations]  # fmt: skip
            worst = max(null.items(), key=lambda wf: wf[1].excluding_zero / wf[1].federations, default=None)
            n_effect = sum(f.federations for f in effect)
            published = sum(f.publishable for f in effect)
            covering = sum(f.covering for f in effect)
            ratios = [r for f in [*null.values(), *effect] for r in (f.width_ratio or [])]
            lines.append(
                f"| {name} | {study} | {n_null} | {false} ({_percent(false, n_null)}) | "
                f"{100 * low:.1f}-{100 * high:.1f}% | {', '.join(above) or 'none'} | "
                f"{f'{worst[0]} {worst[1].excluding_zero}/{worst[1].federations}' if worst else '-'} | "
                f"{_percent(sum(f.publishable for f in null.values()), n_null)} | {n_effect} | "
                f"{_percent(published, n_effect)} | "
                f"{covering} / {published} ({_percent(covering, published)}) | "
                f"{sum(f.excluding_zero for f in effect)} / {published} | "
                f"{np.median(ratios):.2f} |"
            )
    return "\n".join(lines)


NULL_FALSE_LIMIT = 0.05
"""The issue's rule for a null world: at most this share of its federations publish an interval excluding 0."""
COVERAGE_BAND = (0.90, 0.99)
"""The issue's rule for an effect world: published 95% intervals cover the truth in this share of federations."""


def _band_reading(k: int, n: int) -> str:
    """Where k of n covering federations stand against COVERAGE_BAND: inside it; outside it, but with an exact
    95% interval that still reaches into it (not distinguishable from it at this n); or shown outside it."""
    if not n:
        return "-"
    share, (low, high) = k / n, clopper_pearson(k, n)
    if COVERAGE_BAND[0] <= share <= COVERAGE_BAND[1]:
        return "in the band"
    if high < COVERAGE_BAND[0] or low > COVERAGE_BAND[1]:
        return "outside the band"
    return "outside, not distinguishable"


def world_table(rows: list[Ingredients], rule_name: str) -> str:
    """Markdown: one rule, world by world, against the issue's two rules (null: at most 5% false effects;
    effect: published coverage in 90-99%), with exact binomial intervals, publishable share and power."""
    figures = replay_figures(rows, rule_named(rule_name))
    lines = [
        f"`{rule_name}`, world by world (null: published intervals excluding 0, at most "
        f"{NULL_FALSE_LIMIT:.0%}; effect: published intervals covering the truth, {COVERAGE_BAND[0]:.0%} to "
        f"{COVERAGE_BAND[1]:.0%}; exact 95% intervals)",
        "",
        "| study | world | null federations | false effects | exact 95% | null rule | effect federations "
        "| publishable (effect) | covering truth | exact 95% | coverage rule | reductions detected |",
        "|---|---|---:|---:|---|---|---:|---:|---:|---|---|---:|",
    ]
    worlds = sorted({(s, w) for s, _, w in figures}, key=lambda sw: (sw[0] != "unplanned_hospitalisations", sw))
    for study, world in worlds:
        null, effect = figures.get((study, True, world)), figures.get((study, False, world))
        null_cells = ["-", "-", "-", "-"]
        if null:
            low, high = clopper_pearson(null.excluding_zero, null.federations)
            verdict = "met" if null.excluding_zero <= NULL_FALSE_LIMIT * null.federations else "not met"
            null_cells = [
                str(null.federations),
                str(null.excluding_zero),
                f"{100 * low:.1f}-{100 * high:.1f}%",
                verdict,
            ]
        effect_cells = ["-", "-", "-", "-", "-", "-"]
        if effect:
            covered, published = effect.covering, effect.publishable
            low, high = clopper_pearson(covered, published) if published else (math.nan, math.nan)
            effect_cells = [
                str(effect.federations), _percent(published, effect.federations),
                f"{covered} / {published} ({_percent(covered, published)})",
                f"{100 * low:.1f}-{100 * high:.1f}%" if published else "-",
                _band_reading(covered, published), f"{effect.excluding_zero} / {published}",
            ]  # fmt: skip
        lines.append(f"| {study} | {world} | {' | '.join(null_cells)} | {' | '.join(effect_cells)} |")
    return "\n".join(lines)


# --- the diagnosis -----------------------------------------------------------------------------------


def calibrated_z(row: Ingredients) -> float:
    """The calibrated estimate's error over its published standard error, on the log scale (the truth's log ratio is
    0 in a null world, which is where this is read)."""
    widened_by = widening_spread(row.spread, row.interval_spread)
    return (row.log_ratio - row.composite) / math.hypot(row.difference_se, widened_by)


def diagnosis(rows: list[Ingredients]) -> str:
    """The figures behind docs/validation.md's "Why the false effects are skewed", per study, null rows only:
    tails of the calibrated z with the spread at 0 and above it, the composite's skewness and the correlation of
    its estimate with its standard error, the slope of log se_d on the composite, z by tenth of the composite,
    and whether the z's variance differs between worlds (Levene, Bartlett)."""
    out: list[str] = []
    for study in sorted({r.study for r in rows}, key=lambda s: (s != "unplanned_hospitalisations", s)):
        null = [r for r in rows if r.study == study and r.null]
        if not null:
            continue
        z = np.array([calibrated_z(r) for r in null])
        composite = np.array([r.composite for r in null])
        composite_se = np.array([r.composite_se for r in null])
        at_zero = np.array([r.spread == 0 for r in null])
        out.append(f"{study}: {len(null)} null federations, calibrated z SD {z.std():.2f}, "
                   f"|z| > 1.96: {(z > Z95).sum()} up, {(z < -Z95).sum()} down")  # fmt: skip
        for name, part in (("spread 0", at_zero), ("spread > 0", ~at_zero)):
            if part.any():
                out.append(f"  {name}: {part.sum()} ({part.mean():.0%}), z SD {z[part].std():.2f}, "
                           f"|z| > 1.96 in {(np.abs(z[part]) > Z95).mean():.1%}")  # fmt: skip
        coupling = np.corrcoef(composite, composite_se)[0, 1]
        slope = np.polyfit(composite, np.log([r.difference_se for r in null]), 1)[0]
        out.append(f"  composite: skewness {stats.skew(composite):.2f}, "
                   f"its z's {stats.skew(composite / composite_se):.2f}; correlation with its standard error "
                   f"{coupling:.2f}; slope of log se_d on it {slope:.2f}")  # fmt: skip
        edges = np.quantile(composite, [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1])
        for low, high in itertools.pairwise(edges):
            part = (composite >= low) & (composite <= high)
            out.append(f"  composite {low:+.2f} to {high:+.2f}: {part.sum()} federations, "
                       f"mean z {z[part].mean():+.2f}, z > 1.96: {(z[part] > Z95).sum()}, "
                       f"z < -1.96: {(z[part] < -Z95).sum()}")  # fmt: skip
        by_world = [np.array([calibrated_z(r) for r in null if r.world == w]) for w in sorted({r.world for r in null})]
        if len(by_world) > 1:
            out.append(f"  between worlds: Levene p {stats.levene(*by_world).pvalue:.2f}, "
                       f"Bartlett p {stats.bartlett(*by_world).pvalue:.2f}")  # fmt: skip
    return "\n".join(out)
