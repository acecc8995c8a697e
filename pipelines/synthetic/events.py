"""Health and care events over each person's history and follow-up, in both potential outcomes.

Events are drawn at their rate *without* care management; care management then removes some
(thinning with the person's rate ratio) or shortens them, using random numbers drawn whatever
the effects are. So every event has two flags, ``under_treatment`` (it happens in the world we
observe) and ``under_control`` (it would happen had the person never been care-managed), and a
null world differs from its twin only where those flags or durations differ.

Negative-control admissions (``NEGATIVE_CONTROL_RATES``) come from the same risk, frailty and
crises as every other unplanned admission and are never thinned: care management cannot change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.synthetic.episodes import DAYS_PER_YEAR, categorical, managed_since
from pipelines.synthetic.population import People, effect_multipliers
from pipelines.synthetic.scenarios import RESPITE_MAX_RATIO, Crisis, Mechanisms, TrueEffects, odds_shift
from pipelines.synthetic.truth import NEGATIVE_CONTROL_GROUPS

PREVENTABLE_DIAGNOSES = (
    "heart_failure",
    "copd",
    "dehydration",
    "angina",
    "diabetes_complication",
    "fall_injury",
    "infection",
    "stroke",
    "other",
)
PREVENTABLE_MIX = (0.08, 0.05, 0.06, 0.03, 0.03, 0.15, 0.20, 0.05, 0.35)
NEGATIVE_CONTROL_RATES = dict(zip(NEGATIVE_CONTROL_GROUPS, (0.010, 0.025, 0.020, 0.015, 0.025, 0.012), strict=True))
"""Unplanned admissions a year (times the person's rate and frailty) for conditions care management
cannot influence (``docs/outcomes.md`` gives each reason)."""
PREVENTABLE_RATE = 0.30
EMERGENCY_ALONE_RATE = 0.25
EMERGENCY_WITH_ADMISSION = 0.6
"""Share of unplanned admissions that go through the emergency department the same day."""
CRISIS_WITH_ADMISSION = 0.7
"""A hospital crisis starts with an unplanned admission, else with an emergency visit not followed by one."""
FALL_WITH_ADMISSION = 0.4
"""A fall crisis starts with a fall and an emergency visit, followed by an admission for the injury this often."""
RESPITE_RATE = 0.03
BENEFIT_APPLICATION_SHARE = 0.1
RETURN_TO_WORK_SHARE = 0.2


@dataclass
class PersonEffects:
    """Each person's effects of care management (their own, when effects are heterogeneous)."""

    admission_rr: np.ndarray
    emergency_rr: np.ndarray
    fall_rr: np.ndarray
    repair_ratio: np.ndarray
    zarit_points: np.ndarray
    carer_hours: np.ndarray
    return_to_work: float
    respite_ratio: float
    benefit_application: float
    detection_and_delivery: bool


def person_effects(people: People, effects: TrueEffects, heterogeneous: bool) -> PersonEffects:
    m = effect_multipliers(people, heterogeneous)
    return PersonEffects(
        admission_rr=effects.unplanned_admission_rate_ratio ** m["log"],
        emergency_rr=effects.emergency_visit_rate_ratio ** m["log"],
        fall_rr=effects.fall_rate_ratio ** m["log"],
        repair_ratio=effects.rupture_repair_time_ratio ** m["repair"],
        zarit_points=effects.zarit_points_at_12_months * m["points"],
        carer_hours=effects.carer_hours_per_week * m["points"],
        return_to_work=odds_shift(RETURN_TO_WORK_SHARE, effects.return_to_work_odds_ratio),
        respite_ratio=effects.respite_rate_ratio,
        benefit_application=odds_shift(BENEFIT_APPLICATION_SHARE, effects.benefit_application_odds_ratio),
        detection_and_delivery=effects.interruption_detection_and_delivery,
    )


def poisson_events(
    rng: np.random.Generator, rate_per_year: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Homogeneous Poisson events on [start, end) per person: (person index, day) arrays."""
    length = np.maximum(end - start, 0)
    counts = rng.poisson(rate_per_year * length / DAYS_PER_YEAR)
    person = np.repeat(np.arange(rate_per_year.shape[0]), counts)
    day = start[person] + np.floor(rng.random(person.shape[0]) * length[person]).astype(np.int64)
    return person, day


@dataclass
class Care:
    """Who is care-managed when: each person's care-managed episodes (see ``care_intervals``)."""

    starts: np.ndarray
    ends: np.ndarray

    def covered(self, person: np.ndarray, day: np.ndarray, lead: int = 0) -> np.ndarray:
        return managed_since(self.starts, self.ends, person, day, lead) >= 0


class EventDraws:
    """Collects event rows (numpy columns) and makes one frame of them."""

    def __init__(self) -> None:
        self.parts: list[pl.DataFrame] = []

    def add(self, person: np.ndarray, event_type: str, day: np.ndarray, **extra: Any) -> None:
        columns: dict[str, Any] = {"person": person, "event_type": event_type, "day": day}
        columns.update(extra)
        self.parts.append(pl.DataFrame(columns, strict=False))

    def frame(self) -> pl.DataFrame:
        return pl.concat(self.parts, how="diagonal_relaxed")


def draw_events(
    rng: np.random.Generator,
    people: People,
    mechanisms: Mechanisms,
    low: np.ndarray,
    high: np.ndarray,
    effects: PersonEffects,
    care: Care | None,
    crisis: Crisis | None = None,
) -> pl.DataFrame:
    """Every event of every person on [low, high): both potential outcomes, with their flags.

    ``care`` None: nobody is care-managed in that span (history before anyone's enrolment).
    ``crisis``: what a crisis is in a ``crisis_enrolment`` world (its kind, multiplier; the default one
    when None).
    """
    n = people.n
    draws = EventDraws()

    def covered(person: np.ndarray, day: np.ndarray) -> np.ndarray:
        return care.covered(person, day) if care is not None else np.zeros(person.shape[0], dtype=bool)

    # A crisis multiplies some event rates from its onset to its end (the index date by default).
    crisis = crisis or Crisis()
    multiplier = crisis.multipliers()
    in_crisis = people.crisis_onset >= 0
    crisis_low = np.where(in_crisis, np.maximum(low, people.crisis_onset), 0)
    crisis_high = np.where(in_crisis, np.minimum(high, people.crisis_end), 0)
    level = people.rate * people.frailty

    def unplanned(rate: float, family: str = "admissions") -> tuple[np.ndarray, np.ndarray]:
        p1, d1 = poisson_events(rng, rate * level, low, high)
        p2, d2 = poisson_events(rng, rate * level * (multiplier[family] - 1), crisis_low, crisis_high)
        return np.concatenate([p1, p2]), np.concatenate([d1, d2])

    # Unplanned admissions care management can prevent, thinned while care-managed.
    person_a, day_a = unplanned(PREVENTABLE_RATE)
    u = rng.random(person_a.shape[0])
    kept_a = ~covered(person_a, day_a) | (u < effects.admission_rr[person_a])
    probs = np.tile(np.asarray(PREVENTABLE_MIX), (person_a.shape[0], 1))
    probs[:, 0] += 0.5 * people.conditions["heart_failure"][person_a]
    probs[:, 1] += 0.4 * people.conditions["copd"][person_a]
    diagnosis_a = np.asarray(PREVENTABLE_DIAGNOSES, dtype=object)[categorical(rng, probs)]
    # Negative controls: the same risk, frailty and crises, never care management.
    person_n, day_n = unplanned(sum(NEGATIVE_CONTROL_RATES.values()))
    groups = list(NEGATIVE_CONTROL_RATES)
    mix = np.asarray(list(NEGATIVE_CONTROL_RATES.values()))
    diagnosis_n = np.asarray(groups, dtype=object)[rng.choice(len(groups), size=person_n.shape[0], p=mix / mix.sum())]

    # A hospital crisis starts with a stay (or an emergency visit without one) on its first day; a fall
    # crisis with a fall and an emergency visit (and a stay for the injury, sometimes); a carer's
    # exhaustion with no event at all.
    starts = in_crisis & (people.crisis_onset >= low) & (people.crisis_onset < high)
    person_c = np.flatnonzero(starts if crisis.kind != "carer" else np.zeros(n, dtype=bool))
    day_c = people.crisis_onset[person_c]
    if crisis.kind == "fall":
        stay_c = rng.random(person_c.shape[0]) < FALL_WITH_ADMISSION
        diagnosis_c = np.full(person_c.shape[0], "fall_injury", dtype=object)
        on_care_c = covered(person_c, day_c)
        draws.add(person_c, "fall", day_c, under_treatment=~on_care_c, under_control=True)
        draws.add(person_c, "emergency_visit", day_c, under_treatment=~on_care_c, under_control=True)
    else:
        stay_c = rng.random(person_c.shape[0]) < CRISIS_WITH_ADMISSION
        probs_c = np.tile(np.asarray(PREVENTABLE_MIX), (person_c.shape[0], 1))
        diagnosis_c = np.asarray(PREVENTABLE_DIAGNOSES, dtype=object)[categorical(rng, probs_c)]
        draws.add(
            person_c[~stay_c], "emergency_visit", day_c[~stay_c], under_treatment=~covered(person_c, day_c)[~stay_c],
            under_control=True,
        )  # fmt: skip

    person_u = np.concatenate([person_a, person_n, person_c[stay_c]])
    day_u = np.concatenate([day_a, day_n, day_c[stay_c]])
    treated_u = np.concatenate([kept_a, np.ones(person_n.shape[0], dtype=bool), ~covered(person_c, day_c)[stay_c]])
    stay = rng.geometric(1 / 8, person_u.shape[0])
    diagnosis = np.concatenate([diagnosis_a, diagnosis_n, diagnosis_c[stay_c]])
    draws.add(
        person_u, "hospital_admission", day_u, stay=stay, planned=False, diagnosis_group=diagnosis,
        under_treatment=treated_u, under_control=True,
    )  # fmt: skip
    with_ed = rng.random(person_u.shape[0]) < EMERGENCY_WITH_ADMISSION
    draws.add(
        person_u[with_ed], "emergency_visit", day_u[with_ed], under_treatment=treated_u[with_ed], under_control=True
    )

    # Planned stays: scheduled care, and respite stays (more of them with care management).
    person_p, day_p = poisson_events(rng, np.full(n, 0.06), low, high)
    draws.add(
        person_p, "hospital_admission", day_p, stay=rng.geometric(1 / 3, person_p.shape[0]), planned=True,
        diagnosis_group="other", under_treatment=True, under_control=True,
    )  # fmt: skip
    person_r, day_r = poisson_events(rng, np.full(n, RESPITE_RATE * RESPITE_MAX_RATIO), low, high)
    u = rng.random(person_r.shape[0])
    respite_keep = np.where(covered(person_r, day_r), effects.respite_ratio, 1.0) / RESPITE_MAX_RATIO
    draws.add(
        person_r, "hospital_admission", day_r, stay=rng.integers(7, 22, person_r.shape[0]), planned=True,
        diagnosis_group="respite", under_treatment=u < respite_keep, under_control=u < 1 / RESPITE_MAX_RATIO,
    )  # fmt: skip

    # Emergency visits not followed by an admission.
    person_e, day_e = unplanned(EMERGENCY_ALONE_RATE, "emergency")
    u = rng.random(person_e.shape[0])
    kept_e = ~covered(person_e, day_e) | (u < effects.emergency_rr[person_e])
    draws.add(person_e, "emergency_visit", day_e, under_treatment=kept_e, under_control=True)

    fall_rate = 0.4 * np.exp(0.5 * people.risk) * (people.frailty if mechanisms.hidden_frailty else 1.0)
    person_f, day_f = poisson_events(rng, fall_rate, low, high)
    if multiplier["falls"] > 1:  # drawn only then, so that other worlds keep their random numbers
        extra_p, extra_d = poisson_events(rng, fall_rate * (multiplier["falls"] - 1), crisis_low, crisis_high)
        person_f, day_f = np.concatenate([person_f, extra_p]), np.concatenate([day_f, extra_d])
    u = rng.random(person_f.shape[0])
    kept_f = ~covered(person_f, day_f) | (u < effects.fall_rr[person_f])
    draws.add(person_f, "fall", day_f, under_treatment=kept_f, under_control=True)

    # Service interruptions (ruptures) for people with home help: repair time in both worlds
    # from the same normal deviate; care managers also hear of them sooner.
    helped = people.benefit != "none"
    rupture_rate = np.where(helped, 0.25 * (1 + 0.5 * people.lives_alone), 0.0)
    person_s, day_s = poisson_events(rng, rupture_rate, low, high)
    m = person_s.shape[0]
    z = rng.standard_normal(m)
    fast = rng.geometric(1 / 3, m)
    share = rng.uniform(0.3, 1.0, m)
    on_care = covered(person_s, day_s)
    repair_control = np.exp(np.log(28.0) + 0.8 * z)
    repair_treatment = repair_control * np.where(on_care, effects.repair_ratio[person_s], 1.0)
    restored_control = day_s + np.maximum(np.round(repair_control).astype(np.int64), 1)
    restored_treatment = day_s + np.maximum(np.round(repair_treatment).astype(np.int64), 1)
    detected_control = day_s + np.floor((restored_control - day_s) * share).astype(np.int64)
    detected_treatment = np.where(
        on_care & effects.detection_and_delivery,
        day_s + np.minimum(fast, restored_treatment - day_s),
        day_s + np.floor((restored_treatment - day_s) * share).astype(np.int64),
    )
    draws.add(
        person_s, "service_interruption", day_s, restored_treatment=restored_treatment,
        restored_control=restored_control, detected_treatment=detected_treatment, detected_control=detected_control,
        under_treatment=True, under_control=True,
    )  # fmt: skip

    person_l, day_l = poisson_events(rng, np.where(helped, 0.05, 0.0), low, high)
    draws.add(
        person_l, "benefit_lapsed", day_l, benefit=np.where(people.benefit[person_l] == "PCH", "PCH", "APA"),
        under_treatment=True, under_control=True,
    )  # fmt: skip
    return draws.frame()


def benefit_grants(
    rng: np.random.Generator,
    people: People,
    episode_person: np.ndarray,
    episode_start: np.ndarray,
    episode_end: np.ndarray,
    episode_treated: np.ndarray,
    effects: PersonEffects,
) -> pl.DataFrame:
    """Benefits applied for after an index date and granted during follow-up (more often with care management)."""
    n = episode_person.shape[0]
    u = rng.random(n)
    granted_day = episode_start + rng.integers(15, 120, n)
    within = granted_day <= episode_end
    treatment = within & (u < np.where(episode_treated, effects.benefit_application, BENEFIT_APPLICATION_SHARE))
    control = within & (u < BENEFIT_APPLICATION_SHARE)
    idx = np.flatnonzero(treatment | control)
    person = episode_person[idx]
    return pl.DataFrame(
        {
            "person": person,
            "event_type": "benefit_granted",
            "day": granted_day[idx],
            "benefit": np.where(people.benefit[person] == "PCH", "PCH", "APA"),
            "under_treatment": treatment[idx],
            "under_control": control[idx],
        }
    )


def terminal_events(person: np.ndarray, day: np.ndarray, reason: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "person": person,
            "event_type": np.where(reason == "death", "death", "institutional_placement"),
            "day": day,
            "under_treatment": True,
            "under_control": True,
        }
    )


EVENT_SCHEMA: dict[str, pl.DataType] = {
    "person": pl.Int64(),
    "event_type": pl.String(),
    "day": pl.Int64(),
    "stay": pl.Int64(),
    "planned": pl.Boolean(),
    "diagnosis_group": pl.String(),
    "restored_treatment": pl.Int64(),
    "restored_control": pl.Int64(),
    "detected_treatment": pl.Int64(),
    "detected_control": pl.Int64(),
    "benefit": pl.String(),
    "under_treatment": pl.Boolean(),
    "under_control": pl.Boolean(),
}


def all_events(parts: list[pl.DataFrame], last_day: np.ndarray, window_end: int) -> pl.DataFrame:
    """Every event in both worlds, sorted, with each stay's discharge day (-1 while in hospital at extraction).

    A stay ends at the person's last day of follow-up at the latest (death ends it).
    """
    frame = pl.concat(
        [p.select([pl.col(c).cast(t) if c in p.columns else pl.lit(None, t).alias(c) for c, t in EVENT_SCHEMA.items()])
         for p in parts]
    )  # fmt: skip
    last = pl.Series("last_day", last_day).gather(frame["person"])
    return (
        frame.with_columns(last)
        .with_columns(
            pl.when(pl.col("event_type") != "hospital_admission")
            .then(None)
            .when(pl.col("day") + pl.col("stay") > window_end)
            .then(-1)
            .otherwise(pl.min_horizontal(pl.col("day") + pl.col("stay"), pl.col("last_day")))
            .alias("discharge")
        )
        .drop("last_day", "stay")
        .sort(["person", "day", "event_type"], maintain_order=True)
    )
