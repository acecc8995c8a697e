"""Agencies and the people they follow: covariates, an observed risk score, an unobserved frailty.

Everything here is fixed before anyone is enrolled: it is the same in a null world and in its
twin with effects, and the same in every scenario except for the parts a scenario changes
(the frailty's spread, the shape of rates, crises, selection features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.contract import reference_codes
from pipelines.synthetic.scenarios import Crisis, Mechanisms

CONDITIONS_ELDERLY = {
    "dementia": 0.25,
    "parkinson": 0.05,
    "heart_failure": 0.15,
    "copd": 0.10,
    "diabetes": 0.20,
    "stroke": 0.08,
    "cancer": 0.07,
    "frailty": 0.35,
    "mental_health": 0.05,
    "other": 0.10,
}
CONDITIONS_DISABLED = {"disability": 0.6, "brain_injury": 0.25, "mental_health": 0.2, "other": 0.1}


@dataclass
class Agencies:
    agency_id: np.ndarray
    model: np.ndarray
    departement: np.ndarray
    weight: np.ndarray

    @property
    def n(self) -> int:
        return int(self.agency_id.shape[0])


@dataclass
class People:
    """One entry per real person (someone followed by two agencies is one person here)."""

    agency: np.ndarray
    """Index of the agency of their first episode."""
    model: np.ndarray
    disabled: np.ndarray
    age: np.ndarray
    """Age at the first index date (years, fractional)."""
    sex: np.ndarray
    departement: np.ndarray
    lives_alone: np.ndarray
    gir: np.ndarray
    """AGGIR grade at intake, 0 when not assessed."""
    benefit: np.ndarray
    conditions: dict[str, np.ndarray]
    conditions_text: pl.Series
    start: np.ndarray
    """First index date (days since 1970-01-01)."""
    birth_year: np.ndarray
    risk: np.ndarray
    """Observed risk score (centred): what agencies' records tell of the risk of hospitalisation."""
    rate: np.ndarray
    """Multiplier of admission and emergency rates from observed covariates."""
    frailty: np.ndarray
    """Unobserved multiplier of admission and emergency rates (mean 1)."""
    crisis_onset: np.ndarray
    """First day of a crisis before the first index date, or -1."""
    crisis_end: np.ndarray
    """The day after the crisis's last (the first index date unless it goes on after it), or -1."""
    selection: np.ndarray
    """Extra assignment logit from non-linear functions of observed covariates (0 outside that scenario)."""

    @property
    def n(self) -> int:
        return int(self.start.shape[0])


def simulate_agencies(rng: np.random.Generator, n: int) -> Agencies:
    n_integrated = max(1, round(0.4 * n))
    n_remote = max(1, round(0.2 * n))
    models = ["integrated"] * n_integrated + ["remote"] * n_remote + ["proximity"] * (n - n_integrated - n_remote)
    model = np.asarray(models, dtype=object)[rng.permutation(n)]
    metropolitan = np.asarray([c for c in reference_codes("departements") if len(c) == 2], dtype=object)
    weight = rng.lognormal(0.0, 0.5, n) * np.where(model == "remote", 2.0, 1.0)
    return Agencies(
        agency_id=np.asarray([f"AG{i + 1:03d}" for i in range(n)], dtype=object),
        model=model,
        departement=metropolitan[rng.integers(0, metropolitan.shape[0], n)],
        weight=weight,
    )


def uniform_days(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A uniform day in [low, high] for each pair (high >= low)."""
    return low + np.floor(rng.random(low.shape[0]) * (high - low + 1)).astype(np.int64)


def simulate_people(
    rng: np.random.Generator,
    frailty_rng: np.random.Generator,
    crisis_rng: np.random.Generator,
    n: int,
    agencies: Agencies,
    mechanisms: Mechanisms,
    first_start: int,
    last_start: int,
    crisis: Crisis | None = None,
) -> People:
    weights = agencies.weight / agencies.weight.sum()
    agency = np.sort(rng.choice(agencies.n, size=n, p=weights))
    model = agencies.model[agency]
    disabled = rng.random(n) < 0.08
    age = np.where(disabled, rng.uniform(20, 59.99, n), np.clip(rng.normal(84.5, 6.5, n), 60, 104))
    start = uniform_days(rng, np.full(n, first_start), np.full(n, last_start))
    start_year = start.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    birth_year = start_year - np.floor(age).astype(np.int64)
    sex = np.where(rng.random(n) < np.where(disabled, 0.5, 0.66), "F", "M")
    metropolitan = [c for c in reference_codes("departements") if len(c) == 2]
    all_departements = list(reference_codes("departements"))
    local = (model != "remote") & (rng.random(n) < 0.9)
    anywhere = np.where(
        rng.random(n) < 0.97,
        np.asarray(metropolitan, dtype=object)[rng.integers(0, len(metropolitan), n)],
        np.asarray(all_departements, dtype=object)[rng.integers(0, len(all_departements), n)],
    )
    departement = np.where(local, agencies.departement[agency], anywhere)
    lives_alone = rng.random(n) < np.where(disabled, 0.35, 0.45)
    gir = np.where(
        disabled,
        np.where(rng.random(n) < 0.4, rng.choice([2, 3, 4, 5], size=n), 0),
        rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.03, 0.12, 0.15, 0.35, 0.15, 0.20]),
    )
    benefit = np.where(
        disabled,
        np.where(rng.random(n) < 0.85, "PCH", "none"),
        np.where((gir >= 1) & (gir <= 4) & (rng.random(n) < 0.92), "APA", "none"),
    )
    conditions, conditions_text = _simulate_conditions(rng, disabled)

    gir_1_2 = (gir >= 1) & (gir <= 2)
    gir_3_4 = (gir >= 3) & (gir <= 4)
    # Non-linear features of observed covariates: they drive assignment (and shift rates) only in
    # the nonlinear_selection world.
    old_and_dependent = ~disabled & (age >= 90) & gir_1_2
    alone_with_dementia = lives_alone & conditions["dementia"]
    counted = [c for c in CONDITIONS_ELDERLY if c != "other"]
    multimorbid = np.sum([conditions[c] for c in counted], axis=0) >= 3
    age_z = np.where(disabled, 0.0, (age - 84.5) / 6.5)

    # Risk of unplanned hospitalisation: everything in it is observed by the agencies.
    risk = (
        0.7 * gir_1_2
        + 0.4 * gir_3_4
        + np.where(disabled, 0.0, 0.035 * (age - 84.5))
        + 0.25 * lives_alone
        + 0.45 * conditions["heart_failure"]
        + 0.35 * conditions["copd"]
        + 0.20 * conditions["dementia"]
        + 0.15 * conditions["diabetes"]
        + 0.10 * conditions["frailty"]
        + 0.30 * conditions["brain_injury"]
    )
    selection = np.zeros(n)
    if mechanisms.nonlinear_selection:
        risk = risk + 0.5 * old_and_dependent + 0.4 * alone_with_dementia + 0.3 * multimorbid
        selection = (
            2.0 * old_and_dependent + 1.6 * alone_with_dementia - 1.2 * (multimorbid & ~lives_alone) + 0.6 * age_z**2
        )
    risk = risk - risk.mean()

    if mechanisms.hidden_frailty:
        # Additive terms with a threshold (age 90), an interaction (heart failure and living
        # alone) and a ceiling: not log-linear in any covariate.
        rate = np.minimum(
            0.55
            + 0.9 * gir_1_2
            + 0.45 * gir_3_4
            + 0.5 * (~disabled & (age >= 90))
            + 0.7 * (conditions["heart_failure"] & lives_alone)
            + 0.35 * conditions["copd"]
            + 0.25 * (conditions["dementia"] & (gir_1_2 | gir_3_4))
            + 0.3 * conditions["brain_injury"],
            2.2,
        )
        frailty = frailty_rng.gamma(1.5, 1 / 1.5, n)
    else:
        rate = np.exp(risk)
        frailty = frailty_rng.gamma(4.0, 0.25, n)

    crisis = crisis or Crisis()
    in_crisis = crisis_rng.random(n) < np.where(risk > 0, 0.32, 0.18)
    lead = crisis_rng.integers(crisis.onset_days[0], crisis.onset_days[1] + 1, n)
    crisis_onset = np.where(mechanisms.crisis_enrolment & in_crisis, start - lead, -1)
    crisis_end = np.where(crisis_onset >= 0, start + crisis.days_after_index, -1)

    return People(
        agency=agency,
        model=model,
        disabled=disabled,
        age=age,
        sex=sex,
        departement=departement,
        lives_alone=lives_alone,
        gir=gir,
        benefit=benefit,
        conditions=conditions,
        conditions_text=conditions_text,
        start=start,
        birth_year=birth_year,
        risk=risk,
        rate=rate,
        frailty=frailty,
        crisis_onset=crisis_onset,
        crisis_end=crisis_end,
        selection=selection,
    )


def _simulate_conditions(rng: np.random.Generator, disabled: np.ndarray) -> tuple[dict[str, Any], pl.Series]:
    n = disabled.shape[0]
    names = list(dict.fromkeys([*CONDITIONS_ELDERLY, *CONDITIONS_DISABLED]))
    flags: dict[str, Any] = {}
    for name in names:
        p = np.where(disabled, CONDITIONS_DISABLED.get(name, 0.0), CONDITIONS_ELDERLY.get(name, 0.0))
        flags[name] = rng.random(n) < p
    frame = pl.DataFrame({name: flags[name] for name in names})
    text = frame.select(
        pl.concat_str([pl.when(pl.col(c)).then(pl.lit(c)) for c in names], separator="|", ignore_nulls=True)
        .replace("", None)
        .alias("text")
    )["text"]
    return flags, text


def effect_multipliers(people: People, heterogeneous: bool) -> dict[str, np.ndarray]:
    """Per-person multipliers of the design effects (all 1 unless effects are heterogeneous).

    ``log``: on log rate ratios and the log repair-time ratio (admissions, emergency visits, falls);
    ``points``: on Zarit points and carer hours; ``repair``: on the log repair-time ratio.
    """
    n = people.n
    if not heterogeneous:
        ones = np.ones(n)
        return {"log": ones, "points": ones, "repair": ones}
    gir = people.gir
    band = np.select([(gir >= 1) & (gir <= 2), (gir >= 3) & (gir <= 4)], [0, 1], 2)
    alone = people.lives_alone
    log = np.asarray([1.8, 1.0, 0.3])[band] * np.where(alone, 1.4, 0.8)
    points = np.asarray([1.5, 1.0, 0.4])[band] * np.where(alone, 0.7, 1.2)
    repair = np.where(alone, 1.2, 0.85)
    return {"log": log, "points": points, "repair": repair}
