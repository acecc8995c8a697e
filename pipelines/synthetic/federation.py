"""A synthetic federation of care-management agencies with known true effects.

The simulation is vectorised (numpy) so that it scales to millions of persons, and fully
determined by its seed. It is built for testing estimators, so two properties matter more
than realism in every detail:

* **Confounded assignment.** In integrated agencies, clients at higher risk are more likely
  to be care-managed (as in practice: care managers take the hard cases). A naive
  comparison of care-managed and comparison clients is therefore biased against care
  management. All confounders are observed (age, GIR, living alone, conditions), so an
  adjusted design can recover the truth.
* **Known effects, at two levels.** The design effects (a rate ratio, a points difference,
  a time ratio) are parameters; the *sample* effects on the treated are computed from both
  potential outcomes of every treated person, drawn with common random numbers, and
  written to the ground-truth file.

Mortality and institutional placement are deliberately left unaffected (true effect: none),
so person-time is the same under both potential outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from pipelines.contract import POLARS_TYPES, Contract, load_contract, reference_codes

EXPORT_FORMATS = ("csv_cp1252", "csv_utf8", "xlsx", "parquet")
"""How agencies send their exports, assigned to agencies in turn."""

DAYS_PER_YEAR = 365.25
HISTORY_DAYS = 365
"""Events are exported for at least the 12 months before each episode starts."""

EPOCH = date(1970, 1, 1)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrueEffects:
    """Design effects of care management on the treated, after enrolment."""

    unplanned_admission_rate_ratio: float = 0.75
    emergency_visit_rate_ratio: float = 0.85
    zarit_points_at_12_months: float = -8.0
    rupture_repair_time_ratio: float = 0.35
    mortality_hazard_ratio: float = 1.0
    placement_hazard_ratio: float = 1.0


@dataclass(frozen=True)
class FederationSpec:
    agencies: int = 12
    persons: int = 3_000
    months: int = 36
    seed: int = 2026
    end_date: date = date(2026, 6, 30)
    effects: TrueEffects = field(default_factory=TrueEffects)

    def validate(self) -> None:
        if self.agencies < 3:
            raise ValueError("--agencies must be at least 3 (one per agency model: remote, proximity, integrated)")
        if self.persons < 1:
            raise ValueError("--persons must be at least 1")
        if self.months < 15:
            raise ValueError(
                "--months must be at least 15: each episode needs 12 months of history before it starts "
                "and some follow-up after"
            )


@dataclass
class Federation:
    """Every contract entity for the whole federation, plus what only the generator knows."""

    tables: dict[str, pl.DataFrame]
    export_format: dict[str, str]
    ground_truth: dict[str, Any]


def _days(d: date) -> int:
    return (d - EPOCH).days


def _to_date(days: np.ndarray) -> pl.Series:
    return pl.Series(days.astype(np.int32)).cast(pl.Date)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows × categories) probability matrix."""
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random((probs.shape[0], 1))
    return np.minimum((u > cumulative).sum(axis=1), probs.shape[1] - 1)


def _choice(rng: np.random.Generator, values: list[str], probs: list[float], size: int) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=size, p=p / p.sum())]


def _uniform_days(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A uniform day in [low, high] for each pair (high >= low)."""
    return low + np.floor(rng.random(low.shape[0]) * (high - low + 1)).astype(np.int64)


def _poisson_events(
    rng: np.random.Generator, rate_per_year: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Homogeneous Poisson events on [start, end) per person: (person index, day) arrays."""
    length = np.maximum(end - start, 0)
    counts = rng.poisson(rate_per_year * length / DAYS_PER_YEAR)
    person = np.repeat(np.arange(rate_per_year.shape[0]), counts)
    day = start[person] + np.floor(rng.random(person.shape[0]) * length[person]).astype(np.int64)
    return person, day


def generate_federation(spec: FederationSpec, progress: Progress | None = None) -> Federation:
    """Simulate a federation. Deterministic for a given spec."""
    spec.validate()
    say = progress or (lambda _message: None)
    rng = np.random.default_rng(spec.seed)
    contract = load_contract()
    effects = spec.effects

    window_end = _days(spec.end_date)
    window_start = window_end - round(spec.months * DAYS_PER_YEAR / 12)
    first_start = window_start + HISTORY_DAYS
    last_start = window_end - 30

    say(f"agencies: {spec.agencies}")
    agencies = _simulate_agencies(rng, spec)
    n_agencies = agencies["agency_id"].shape[0]

    say(f"persons: {spec.persons:,}")
    n = spec.persons
    weights = agencies["weight"] / agencies["weight"].sum()
    person_agency = np.sort(rng.choice(n_agencies, size=n, p=weights))
    model = agencies["model"][person_agency]
    disabled = rng.random(n) < 0.08
    age = np.where(disabled, rng.uniform(20, 59.99, n), np.clip(rng.normal(84.5, 6.5, n), 60, 104))
    start = _uniform_days(rng, np.full(n, first_start), np.full(n, last_start))
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
    departement = np.where(local, agencies["departement"][person_agency], anywhere)
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
    conditions = _simulate_conditions(rng, disabled)

    # Risk of unplanned hospitalisation: everything in it is observed by the agencies.
    risk = (
        0.7 * ((gir >= 1) & (gir <= 2))
        + 0.4 * ((gir >= 3) & (gir <= 4))
        + np.where(disabled, 0.0, 0.035 * (age - 84.5))
        + 0.25 * lives_alone
        + 0.45 * conditions["heart_failure"]
        + 0.35 * conditions["copd"]
        + 0.20 * conditions["dementia"]
        + 0.15 * conditions["diabetes"]
        + 0.10 * conditions["frailty"]
        + 0.30 * conditions["brain_injury"]
    )
    risk = risk - risk.mean()
    propensity = 1.0 / (1.0 + np.exp(-(-0.3 + 1.8 * risk)))
    treated = np.where(model == "integrated", rng.random(n) < propensity, True)

    say("follow-up, deaths and placements")
    t_death = rng.exponential(DAYS_PER_YEAR / (0.07 * np.exp(0.8 * risk) * effects.mortality_hazard_ratio))
    t_place = rng.exponential(
        DAYS_PER_YEAR / (0.05 * np.exp(0.6 * risk + 0.4 * conditions["dementia"]) * effects.placement_hazard_ratio)
    )
    t_exit = rng.exponential(DAYS_PER_YEAR / np.where(treated, 0.15, 0.12))
    # Column 0 is administrative censoring at the extraction date.
    candidates = np.stack([(window_end - start).astype(float), t_death, t_place, t_exit], axis=1)
    reason_idx = np.argmin(candidates, axis=1)
    fu_end = start + np.floor(np.min(candidates, axis=1)).astype(np.int64)
    fu_end = np.minimum(fu_end, window_end)
    reason_idx = np.where(fu_end >= window_end, 0, reason_idx)
    exit_reason = _choice(rng, ["goal_reached", "withdrew", "moved", "funding_ended"], [0.4, 0.25, 0.2, 0.15], n)
    end_reason = np.full(n, None, dtype=object)
    end_reason[reason_idx == 1] = "death"
    end_reason[reason_idx == 2] = "placement"
    end_reason[reason_idx == 3] = exit_reason[reason_idx == 3]
    history_start = start - HISTORY_DAYS
    frailty = rng.gamma(4.0, 0.25, n)  # unobserved, independent of assignment

    say("episodes and care managers")
    episodes, care_managers, plan_day = _simulate_episodes(
        rng, agencies, person_agency, model, treated, risk, start, fu_end, end_reason, window_end, first_start
    )

    say("events")
    events, truth_events = _simulate_events(
        rng,
        effects,
        n,
        treated,
        risk,
        frailty,
        conditions,
        benefit,
        lives_alone,
        start,
        fu_end,
        history_start,
        end_reason,
        window_end,
    )

    say("carers and assessments")
    carers, has_carer, carer_employed = _simulate_carers(rng, n, disabled, lives_alone)
    assessments, truth_zarit = _simulate_assessments(
        rng,
        effects,
        agencies,
        person_agency,
        treated,
        risk,
        conditions,
        gir,
        has_carer,
        carer_employed,
        start,
        fu_end,
    )

    say("service plans and interventions")
    service_plans = _simulate_service_plans(rng, treated, gir, benefit, start, fu_end, history_start, events)
    interventions = _simulate_interventions(rng, treated, start, fu_end, plan_day)

    person_ids = _person_ids(agencies["agency_id"], person_agency)
    persons = pl.DataFrame(
        {
            "person_id": person_ids,
            "agency_id": agencies["agency_id"][person_agency],
            "birth_year": birth_year,
            "sex": sex,
            "departement": departement,
            "lives_alone": lives_alone,
            "main_conditions": conditions["text"],
            "gir_at_intake": pl.Series(gir).replace(0, None),
            "benefit": benefit,
        },
        strict=False,
    )
    tables = _finish_tables(
        contract,
        person_ids,
        {
            "agencies": pl.DataFrame(
                {"agency_id": agencies["agency_id"], "model": agencies["model"], "departement": agencies["departement"]}
            ),
            "care_managers": care_managers,
            "persons": persons,
            "carers": carers,
            "episodes": episodes,
            "events": events,
            "assessments": assessments,
            "service_plans": service_plans,
            "interventions": interventions,
        },
    )

    treated_idx = treated
    naive = _naive_rates(events, treated, start, fu_end)
    ground_truth = {
        "generator": "parcours synthetic federation",
        "contract_version": contract.version,
        "spec": {**asdict(spec), "end_date": spec.end_date.isoformat()},
        "window": {
            "start": (EPOCH + timedelta(days=int(window_start))).isoformat(),
            "end": spec.end_date.isoformat(),
        },
        "design_effects": asdict(effects),
        "sample_att": {**truth_events, "zarit_12_months": truth_zarit},
        "confounding": {
            "mean_risk_care_managed": float(risk[treated_idx].mean()),
            "mean_risk_comparison": float(risk[~treated_idx].mean()) if (~treated_idx).any() else None,
            "naive_unplanned_rate_ratio_after_index": naive,
            "note": (
                "Higher-risk clients of integrated agencies are more likely to be care-managed, so the naive "
                "rate ratio (care-managed over comparison) is biased upwards from the true rate ratio."
            ),
        },
        "rows": {name: frame.height for name, frame in tables.items()},
    }
    export_format = {
        agency_id: EXPORT_FORMATS[i % len(EXPORT_FORMATS)] for i, agency_id in enumerate(agencies["agency_id"])
    }
    return Federation(tables=tables, export_format=export_format, ground_truth=ground_truth)


def _simulate_agencies(rng: np.random.Generator, spec: FederationSpec) -> dict[str, np.ndarray]:
    n = spec.agencies
    n_integrated = max(1, round(0.4 * n))
    n_remote = max(1, round(0.2 * n))
    models = ["integrated"] * n_integrated + ["remote"] * n_remote + ["proximity"] * (n - n_integrated - n_remote)
    model = np.asarray(models, dtype=object)[rng.permutation(n)]
    metropolitan = np.asarray([c for c in reference_codes("departements") if len(c) == 2], dtype=object)
    weight = rng.lognormal(0.0, 0.5, n) * np.where(model == "remote", 2.0, 1.0)
    return {
        "agency_id": np.asarray([f"AG{i + 1:03d}" for i in range(n)], dtype=object),
        "model": model,
        "departement": metropolitan[rng.integers(0, metropolitan.shape[0], n)],
        "weight": weight,
    }


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


def _simulate_conditions(rng: np.random.Generator, disabled: np.ndarray) -> dict[str, Any]:
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
    flags["text"] = text
    return flags


def _person_ids(agency_ids: np.ndarray, person_agency: np.ndarray) -> pl.Series:
    # person_agency is sorted, so a running number within each agency is a simple offset.
    first = np.searchsorted(person_agency, person_agency, side="left")
    number = np.arange(person_agency.shape[0]) - first + 1
    frame = pl.DataFrame({"agency": agency_ids[person_agency], "number": number})
    return frame.select(
        pl.concat_str([pl.col("agency"), pl.lit("-P"), pl.col("number").cast(pl.String).str.zfill(6)]).alias("id")
    )["id"]


def _simulate_episodes(
    rng: np.random.Generator,
    agencies: dict[str, np.ndarray],
    person_agency: np.ndarray,
    model: np.ndarray,
    treated: np.ndarray,
    risk: np.ndarray,
    start: np.ndarray,
    fu_end: np.ndarray,
    end_reason: np.ndarray,
    window_end: int,
    first_start: int,
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    n = start.shape[0]
    situations = ["prevention", "rupture", "hospital_discharge", "crisis", "carer_exhaustion", "administrative"]
    logits = np.stack(
        [
            np.full(n, 0.6),
            np.zeros(n),
            -0.3 + 0.9 * risk,
            -0.6 + 0.9 * risk,
            np.zeros(n),
            np.full(n, -0.4),
        ],
        axis=1,
    )
    entry = np.asarray(situations, dtype=object)[_categorical(rng, np.exp(logits))]

    sources = [
        "ccas",
        "social_landlord",
        "employer",
        "pension_fund",
        "insurer",
        "hospital",
        "gp_pharmacist",
        "guardian",
        "family_online",
        "other",
    ]
    source_probs = {
        "integrated": [0.25, 0.05, 0.02, 0.10, 0.03, 0.20, 0.15, 0.03, 0.12, 0.05],
        "proximity": [0.28, 0.10, 0.03, 0.15, 0.04, 0.14, 0.10, 0.05, 0.08, 0.03],
        "remote": [0.05, 0.02, 0.25, 0.18, 0.22, 0.03, 0.02, 0.01, 0.20, 0.02],
    }
    referral_source = np.empty(n, dtype=object)
    payer = np.empty(n, dtype=object)
    payers = ["family", "employer", "insurer", "pension_fund", "solidarity_campaign", "public"]
    for m, probs in source_probs.items():
        mask = model == m
        referral_source[mask] = _choice(rng, sources, probs, int(mask.sum()))
        payer_probs = [0.3, 0.2, 0.2, 0.2, 0.05, 0.05] if m == "remote" else [0.4, 0.03, 0.12, 0.3, 0.05, 0.1]
        payer[mask] = _choice(rng, payers, payer_probs, int(mask.sum()))
    payer = np.where(treated, payer, "none")

    referral = start - rng.geometric(np.where(model == "remote", 1 / 3, 1 / 8), n)
    first_contact = start
    plan = start + rng.geometric(1 / 21, n)
    plan_date = np.where(treated & (plan <= fu_end), plan, -1)

    # Care managers: enough full-time equivalents for about 25 active episodes each.
    agency_ids = agencies["agency_id"]
    care_manager_of = np.full(n, None, dtype=object)
    cm_rows: dict[str, list[Any]] = {"care_manager_id": [], "agency_id": [], "fte": []}
    span = max(window_end - first_start, 1)
    for a, agency_id in enumerate(agency_ids):
        members = np.flatnonzero((person_agency == a) & treated)
        active = (fu_end[members] - start[members]).sum() / span
        needed = max(active / 25.0, 0.5)
        ftes: list[float] = []
        while sum(ftes) < needed - 1e-9:
            ftes.append(float(rng.choice([0.5, 0.8, 1.0], p=[0.2, 0.3, 0.5])))
        ids = [f"{agency_id}-CM{k + 1:03d}" for k in range(len(ftes))]
        cm_rows["care_manager_id"] += ids
        cm_rows["agency_id"] += [agency_id] * len(ids)
        cm_rows["fte"] += ftes
        if members.size:
            p = np.asarray(ftes) / sum(ftes)
            care_manager_of[members] = np.asarray(ids, dtype=object)[rng.choice(len(ids), size=members.size, p=p)]

    agency = agency_ids[person_agency]
    episodes = pl.DataFrame(
        {
            "episode_number": np.arange(n),
            "agency_id": agency,
            "care_manager_id": pl.Series(care_manager_of.tolist(), dtype=pl.String),
            "cohort": np.where(treated, "care_managed", "comparison"),
            "referral_date": _to_date(referral),
            "first_contact_date": _to_date(first_contact),
            "plan_date": _to_date(plan_date),
            "start_date": _to_date(start),
            "end_date": _to_date(np.where(fu_end >= window_end, -1, fu_end)),
            "end_reason": pl.Series(end_reason.tolist(), dtype=pl.String),
            "referral_source": referral_source,
            "payer": payer,
            "entry_situation": entry,
        },
        strict=False,
    ).with_columns(
        pl.when(pl.col("plan_date") == date(1969, 12, 31)).then(None).otherwise(pl.col("plan_date")).alias("plan_date"),
        pl.when(pl.col("end_date") == date(1969, 12, 31)).then(None).otherwise(pl.col("end_date")).alias("end_date"),
    )
    return episodes, pl.DataFrame(cm_rows), plan_date


def _simulate_events(
    rng: np.random.Generator,
    effects: TrueEffects,
    n: int,
    treated: np.ndarray,
    risk: np.ndarray,
    frailty: np.ndarray,
    conditions: dict[str, Any],
    benefit: np.ndarray,
    lives_alone: np.ndarray,
    start: np.ndarray,
    fu_end: np.ndarray,
    history_start: np.ndarray,
    end_reason: np.ndarray,
    window_end: int,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    parts: list[pl.DataFrame] = []
    end_of_follow_up = fu_end + 1  # events may fall on the last day of follow-up

    def part(person: np.ndarray, event_type: str, day: np.ndarray, **extra: Any) -> None:
        columns: dict[str, Any] = {"person": person, "event_type": event_type, "event_day": day}
        columns.update(extra)
        parts.append(pl.DataFrame(columns, strict=False))

    # Unplanned admissions, with both potential outcomes after enrolment.
    rate = 0.30 * np.exp(risk) * frailty
    person_b, day_b = _poisson_events(rng, rate, history_start, start)
    person_a, day_a = _poisson_events(rng, rate, start, end_of_follow_up)
    kept = ~treated[person_a] | (rng.random(person_a.shape[0]) < effects.unplanned_admission_rate_ratio)
    person_u = np.concatenate([person_b, person_a[kept]])
    day_u = np.concatenate([day_b, day_a[kept]])
    stay = rng.geometric(1 / 8, person_u.shape[0])
    diagnoses = [
        "heart_failure",
        "copd",
        "dehydration",
        "angina",
        "diabetes_complication",
        "fall_injury",
        "infection",
        "stroke",
        "other",
    ]
    base = np.asarray([0.08, 0.05, 0.06, 0.03, 0.03, 0.15, 0.20, 0.05, 0.35])
    probs = np.tile(base, (person_u.shape[0], 1))
    probs[:, 0] += 0.5 * conditions["heart_failure"][person_u]
    probs[:, 1] += 0.4 * conditions["copd"][person_u]
    diagnosis = np.asarray(diagnoses, dtype=object)[_categorical(rng, probs)]
    part(person_u, "hospital_admission", day_u, stay=stay, planned=False, diagnosis_group=diagnosis)
    with_ed = rng.random(person_u.shape[0]) < 0.6
    part(person_u[with_ed], "emergency_visit", day_u[with_ed])

    # Planned stays: scheduled care, and respite stays that care managers arrange.
    person_p, day_p = _poisson_events(rng, np.full(n, 0.06), history_start, end_of_follow_up)
    part(
        person_p,
        "hospital_admission",
        day_p,
        stay=rng.geometric(1 / 3, person_p.shape[0]),
        planned=True,
        diagnosis_group="other",
    )
    person_r, day_r = _poisson_events(rng, np.where(treated, 0.12, 0.03), start, end_of_follow_up)
    part(
        person_r,
        "hospital_admission",
        day_r,
        stay=rng.integers(7, 22, person_r.shape[0]),
        planned=True,
        diagnosis_group="respite",
    )

    # Emergency visits not followed by an admission.
    ed_rate = 0.25 * np.exp(risk) * frailty
    person_eb, day_eb = _poisson_events(rng, ed_rate, history_start, start)
    person_ea, day_ea = _poisson_events(rng, ed_rate, start, end_of_follow_up)
    kept_ed = ~treated[person_ea] | (rng.random(person_ea.shape[0]) < effects.emergency_visit_rate_ratio)
    part(np.concatenate([person_eb, person_ea[kept_ed]]), "emergency_visit", np.concatenate([day_eb, day_ea[kept_ed]]))

    person_f, day_f = _poisson_events(rng, 0.4 * np.exp(0.5 * risk), history_start, end_of_follow_up)
    part(person_f, "fall", day_f)

    died = end_reason == "death"
    placed = end_reason == "placement"
    part(np.flatnonzero(died), "death", fu_end[died])
    part(np.flatnonzero(placed), "institutional_placement", fu_end[placed])

    # Service interruptions (ruptures) for people with home help; repair time with both
    # potential outcomes drawn from the same normal deviate.
    helped = benefit != "none"
    rupture_rate = np.where(helped, 0.25 * (1 + 0.5 * lives_alone), 0.0)
    person_s, day_s = _poisson_events(rng, rupture_rate, history_start, end_of_follow_up)
    z = rng.standard_normal(person_s.shape[0])
    repair_untreated = np.exp(np.log(28.0) + 0.8 * z)
    repair_treated = repair_untreated * effects.rupture_repair_time_ratio
    on_treatment = treated[person_s] & (day_s >= start[person_s])
    repair = np.where(on_treatment, repair_treated, repair_untreated)
    restored = day_s + np.maximum(np.round(repair).astype(np.int64), 1)
    detection_delay = np.where(
        on_treatment,
        np.minimum(rng.geometric(1 / 3, person_s.shape[0]), restored - day_s),
        np.floor((restored - day_s) * rng.uniform(0.3, 1.0, person_s.shape[0])).astype(np.int64),
    )
    detected = day_s + detection_delay
    open_at_end = restored > fu_end[person_s]
    part(
        person_s,
        "service_interruption",
        day_s,
        end_day=np.where(open_at_end, -1, restored),
        detected_day=np.where(detected > fu_end[person_s], -1, detected),
    )

    # Benefits: care managers file applications soon after enrolment; some benefits lapse.
    applied = treated & (rng.random(n) < 0.4)
    granted_day = start + rng.integers(15, 120, n)
    granted = applied & (granted_day <= fu_end)
    part(
        np.flatnonzero(granted),
        "benefit_granted",
        granted_day[granted],
        benefit=np.where(benefit[granted] == "PCH", "PCH", "APA"),
    )
    person_l, day_l = _poisson_events(rng, np.where(helped, 0.05, 0.0), history_start, end_of_follow_up)
    part(person_l, "benefit_lapsed", day_l, benefit=np.where(benefit[person_l] == "PCH", "PCH", "APA"))

    events = pl.concat(parts, how="diagonal_relaxed")
    fu_end_series = pl.Series("fu_end", fu_end)
    events = (
        events.with_columns(fu_end_series.gather(events["person"]).alias("fu_end"))
        .with_columns(
            # A stay still running at extraction has no discharge date; a death ends it.
            pl.when(pl.col("event_type") == "hospital_admission")
            .then(
                pl.when(pl.col("event_day") + pl.col("stay") > window_end)
                .then(None)
                .otherwise(pl.min_horizontal(pl.col("event_day") + pl.col("stay"), pl.col("fu_end")))
            )
            .otherwise(pl.col("end_day").replace(-1, None))
            .alias("end_day"),
            pl.col("detected_day").replace(-1, None),
        )
        .sort(["person", "event_day", "event_type"])
    )
    events = events.select(
        pl.col("person"),
        pl.col("event_type"),
        pl.col("event_day").cast(pl.Int32).cast(pl.Date).alias("event_date"),
        pl.col("end_day").cast(pl.Int32).cast(pl.Date).alias("end_date"),
        pl.col("planned"),
        pl.col("diagnosis_group"),
        pl.col("detected_day").cast(pl.Int32).cast(pl.Date).alias("detected_date"),
        pl.col("benefit"),
    )

    treated_years = float(((fu_end - start + 1) * treated).sum() / DAYS_PER_YEAR)
    on_treated = treated[person_a]
    counterfactual = int(on_treated.sum())
    observed = int((on_treated & kept).sum())
    treated_ruptures = on_treatment
    truth = {
        "unplanned_admissions": {
            "treated_person_years": treated_years,
            "observed": observed,
            "counterfactual": counterfactual,
            "avoided": counterfactual - observed,
            "rate_per_1000py_observed": 1000 * observed / treated_years if treated_years else None,
            "rate_per_1000py_counterfactual": 1000 * counterfactual / treated_years if treated_years else None,
            "rate_difference_per_1000py": 1000 * (observed - counterfactual) / treated_years if treated_years else None,
            "rate_ratio": observed / counterfactual if counterfactual else None,
        },
        "rupture_repair_days": {
            "n_ruptures": int(treated_ruptures.sum()),
            "observed_mean": float(repair_treated[treated_ruptures].mean()) if treated_ruptures.any() else None,
            "counterfactual_mean": float(repair_untreated[treated_ruptures].mean()) if treated_ruptures.any() else None,
            "difference_days": float((repair_treated - repair_untreated)[treated_ruptures].mean())
            if treated_ruptures.any()
            else None,
        },
    }
    return events, truth


def _simulate_carers(
    rng: np.random.Generator, n: int, disabled: np.ndarray, lives_alone: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    has_carer = rng.random(n) < np.where(disabled, 0.8, 0.7)
    elderly_rel = np.where(
        ~lives_alone & (rng.random(n) < 0.65),
        "spouse",
        _choice(
            rng,
            ["child", "child_in_law", "sibling", "other_family", "friend_neighbour"],
            [0.6, 0.1, 0.05, 0.1, 0.15],
            n,
        ),
    )
    disabled_rel = _choice(rng, ["parent", "spouse", "sibling"], [0.6, 0.3, 0.1], n)
    relationship = np.where(disabled, disabled_rel, elderly_rel)
    bands = ["under_40", "40_54", "55_64", "65_74", "75_plus"]
    band_probs = {
        "spouse": [0.0, 0.02, 0.05, 0.18, 0.75],
        "child": [0.05, 0.35, 0.45, 0.15, 0.0],
        "child_in_law": [0.05, 0.35, 0.45, 0.15, 0.0],
        "parent": [0.05, 0.30, 0.40, 0.20, 0.05],
        "sibling": [0.05, 0.2, 0.3, 0.3, 0.15],
        "other_family": [0.2, 0.3, 0.3, 0.15, 0.05],
        "friend_neighbour": [0.05, 0.15, 0.3, 0.3, 0.2],
    }
    age_band = np.empty(n, dtype=object)
    employ_p = np.zeros(n)
    for rel, probs in band_probs.items():
        mask = relationship == rel
        age_band[mask] = _choice(rng, bands, probs, int(mask.sum()))
    employ_p = np.select([np.isin(age_band, ["under_40", "40_54"]), age_band == "55_64"], [0.8, 0.55], 0.05)
    employed = rng.random(n) < employ_p
    lives_with = np.where(relationship == "spouse", True, rng.random(n) < 0.2)
    idx = np.flatnonzero(has_carer)
    carers = pl.DataFrame(
        {
            "person": idx,
            "carer_number": np.arange(idx.shape[0]),
            "relationship": relationship[idx],
            "age_band": age_band[idx],
            "employed": employed[idx],
            "lives_with_person": lives_with[idx],
        }
    )
    return carers, has_carer, employed


def _simulate_assessments(
    rng: np.random.Generator,
    effects: TrueEffects,
    agencies: dict[str, np.ndarray],
    person_agency: np.ndarray,
    treated: np.ndarray,
    risk: np.ndarray,
    conditions: dict[str, Any],
    gir: np.ndarray,
    has_carer: np.ndarray,
    carer_employed: np.ndarray,
    start: np.ndarray,
    fu_end: np.ndarray,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    n = start.shape[0]
    offsets = np.asarray([0, 182, 365])
    person = np.repeat(np.arange(n), offsets.shape[0])
    offset = np.tile(offsets, n)
    day = start[person] + offset
    keep = day <= fu_end[person]
    person, offset, day = person[keep], offset[keep], day[keep]
    m = person.shape[0]
    years = offset / DAYS_PER_YEAR

    baseline = np.clip(rng.normal(36 + 6 * risk + 6 * conditions["dementia"], 11), 4, 84)
    noise = rng.normal(0, 4, m)
    untreated = baseline[person] + 3.0 * years + noise
    effect = effects.zarit_points_at_12_months * np.minimum(offset / 182.0, 1.0)
    treated_outcome = untreated + effect
    zarit0 = np.clip(np.round(untreated), 0, 88)
    zarit1 = np.clip(np.round(treated_outcome), 0, 88)
    on_treatment = treated[person]
    zarit = np.where(on_treatment, zarit1, zarit0)
    with_zarit = has_carer[person]

    # Some agencies send the 22 items, others only the total.
    item_level = (np.arange(agencies["agency_id"].shape[0]) % 3 == 0)[person_agency[person]] & with_zarit
    items = _zarit_items(rng, zarit.astype(np.int64))

    hours0 = np.clip(rng.normal(18 + 12 * conditions["dementia"], 8), 2, 100)
    hours = np.clip(
        hours0[person] + np.where(on_treatment, -4.0 * np.minimum(offset / 182.0, 1.0), 0.0) + rng.normal(0, 2, m),
        0,
        168,
    )
    start_status = np.where(
        carer_employed,
        _choice(rng, ["full_time", "part_time", "unpaid_leave"], [0.6, 0.25, 0.15], n),
        np.where(rng.random(n) < 0.1, "stopped_work", "not_in_labour_force"),
    )
    back_to_work = rng.random(m) < np.where(on_treatment, 0.6, 0.2)
    employment = np.where(
        (offset >= 365) & (start_status[person] == "unpaid_leave") & back_to_work, "full_time", start_status[person]
    )
    gir_now = np.where((offset >= 365) & (gir[person] > 1) & (rng.random(m) < 0.2), gir[person] - 1, gir[person])
    frame = pl.DataFrame(
        {
            "person": person,
            "assessment_date": _to_date(day),
            "gir": pl.Series(gir_now).replace(0, None),
            "with_zarit": with_zarit,
            "item_level": item_level,
            "zarit_form": "zbi22",
            "zarit_total": zarit,
            "zarit_items": items,
            "carer_hours_per_week": np.round(hours * 2) / 2,
            "carer_employment": employment,
        },
        strict=False,
    )
    # Carer measures exist only where there is a carer; items only where the agency sends them.
    carer_columns = ["zarit_form", "zarit_total", "carer_hours_per_week", "carer_employment"]
    frame = frame.with_columns(
        *(pl.when(pl.col("with_zarit")).then(pl.col(c)).alias(c) for c in carer_columns),
        pl.when(pl.col("item_level")).then(pl.col("zarit_items")).alias("zarit_items"),
    ).drop("with_zarit", "item_level")

    at_12 = with_zarit & on_treatment & (offset == 365)
    truth = {
        "n_treated_with_12_month_assessment": int(at_12.sum()),
        "difference_points": float((zarit1 - zarit0)[at_12].mean()) if at_12.any() else None,
        "observed_mean": float(zarit1[at_12].mean()) if at_12.any() else None,
        "counterfactual_mean": float(zarit0[at_12].mean()) if at_12.any() else None,
    }
    return frame, truth


def _zarit_items(rng: np.random.Generator, totals: np.ndarray) -> pl.Series:
    """22 item scores (0-4) summing to each total: the remainder goes to random items."""
    base = totals // 22
    remainder = totals % 22
    order = np.argsort(rng.random((totals.shape[0], 22)), axis=1)
    items = base[:, None] + (order < remainder[:, None])
    frame = pl.DataFrame(items.astype(np.int64), schema=[f"i{k}" for k in range(22)], orient="row")
    return frame.select(pl.concat_str(pl.all().cast(pl.String), separator="|").alias("items"))["items"]


def _simulate_service_plans(
    rng: np.random.Generator,
    treated: np.ndarray,
    gir: np.ndarray,
    benefit: np.ndarray,
    start: np.ndarray,
    fu_end: np.ndarray,
    history_start: np.ndarray,
    events: pl.DataFrame,
) -> pl.DataFrame:
    helped = np.flatnonzero(benefit != "none")
    month_index = lambda days: (  # noqa: E731
        days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    )
    first = month_index(history_start[helped])
    last = month_index(fu_end[helped])
    counts = last - first + 1
    person = np.repeat(helped, counts)
    month = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    apa_hours = np.asarray([0, 70, 55, 40, 25, 0, 0], dtype=float)
    granted_person = np.where(
        benefit == "PCH", np.round(rng.lognormal(np.log(100), 0.6, benefit.shape[0])), apa_hours[gir]
    )
    granted = np.minimum(granted_person[person], 744)
    month_day = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    on_treatment = treated[person] & (month_day >= start[person] - 15)
    share = np.where(on_treatment, rng.beta(9, 1, person.shape[0]), rng.beta(8, 2.2, person.shape[0]))
    frame = pl.DataFrame(
        {
            "person": person,
            "month_day": month_day,
            "funder": benefit[person],
            "hours_granted": granted,
            "delivered": np.round(granted * share * 2) / 2,
        }
    )
    # An interruption takes its days without help out of that month's delivered hours.
    interruptions = (
        events.filter(pl.col("event_type") == "service_interruption")
        .with_columns(
            pl.col("event_date").dt.truncate("1mo").cast(pl.Int32).cast(pl.Int64).alias("month_day"),
            pl.col("event_date").dt.month_end().alias("month_end"),
        )
        .with_columns(
            (
                (
                    pl.min_horizontal(pl.col("end_date").fill_null(pl.col("month_end")), pl.col("month_end"))
                    - pl.col("event_date")
                ).dt.total_days()
                / pl.col("month_end").dt.day()
            )
            .clip(0, 1)
            .alias("lost_share")
        )
        .group_by(["person", "month_day"])
        .agg(pl.col("lost_share").sum().clip(0, 1))
    )
    frame = (
        frame.join(interruptions, on=["person", "month_day"], how="left")
        .with_columns((pl.col("delivered") * (1 - pl.col("lost_share").fill_null(0)) * 2).round(0) / 2)
        .sort(["person", "month_day"])
    )
    return frame.select(
        "person",
        pl.col("month_day").cast(pl.Int32).cast(pl.Date).alias("month"),
        "funder",
        "hours_granted",
        pl.col("delivered").alias("hours_delivered"),
    )


def _simulate_interventions(
    rng: np.random.Generator, treated: np.ndarray, start: np.ndarray, fu_end: np.ndarray, plan_day: np.ndarray
) -> pl.DataFrame:
    idx = np.flatnonzero(treated)
    first = pl.DataFrame({"episode": idx, "day": start[idx], "intervention_type": "assessment_360"})
    has_plan = np.flatnonzero(plan_day >= 0)
    planned = pl.DataFrame({"episode": has_plan, "day": plan_day[has_plan], "intervention_type": "personal_plan"})
    others_person, others_day = _poisson_events(rng, np.where(treated, 3.0, 0.0), start, fu_end + 1)
    kinds = [
        "provider_found",
        "benefit_application",
        "benefit_recovered",
        "home_adaptation",
        "respite_arranged",
        "mediation",
        "administrative_help",
        "follow_up_call",
        "emergency_response",
        "other",
    ]
    kind = _choice(rng, kinds, [0.15, 0.12, 0.05, 0.08, 0.06, 0.08, 0.12, 0.25, 0.04, 0.05], others_person.shape[0])
    others = pl.DataFrame({"episode": others_person, "day": others_day, "intervention_type": kind})
    return (
        pl.concat([first, planned, others], how="vertical_relaxed")
        .sort(["episode", "day", "intervention_type"])
        .select("episode", pl.col("day").cast(pl.Int32).cast(pl.Date).alias("intervention_date"), "intervention_type")
    )


def _naive_rates(events: pl.DataFrame, treated: np.ndarray, start: np.ndarray, fu_end: np.ndarray) -> float | None:
    """Care-managed over comparison unplanned admission rate after the index date, unadjusted."""
    unplanned = events.filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned").fill_null(False))
    person = unplanned["person"].to_numpy()
    day = unplanned["event_date"].cast(pl.Int32).to_numpy()
    after = day >= start[person]
    years = (fu_end - start + 1) / DAYS_PER_YEAR
    if not (~treated).any():
        return None
    rate_t = (treated[person] & after).sum() / years[treated].sum()
    rate_c = (~treated[person] & after).sum() / years[~treated].sum()
    return float(rate_t / rate_c) if rate_c else None


def _finish_tables(contract: Contract, person_ids: pl.Series, raw: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Give every row its pseudonyms and put columns in contract order."""
    episodes = raw["episodes"]
    episode_ids = episodes.select(
        pl.concat_str([pl.col("agency_id"), pl.lit("-E"), (pl.col("episode_number") + 1).cast(pl.String).str.zfill(7)])
    ).to_series()
    out: dict[str, pl.DataFrame] = {}
    out["agencies"] = raw["agencies"]
    out["care_managers"] = raw["care_managers"]
    out["persons"] = raw["persons"]
    carer_person = person_ids.gather(raw["carers"]["person"])
    out["carers"] = raw["carers"].with_columns(
        carer_person.alias("person_id"), (carer_person + "-C1").alias("carer_id")
    )
    out["episodes"] = episodes.with_columns(person_ids.alias("person_id"), episode_ids.alias("episode_id"))

    def numbered(frame: pl.DataFrame, prefix: str, id_name: str, owner: pl.Series, owner_col: str) -> pl.DataFrame:
        owner_ids = owner.gather(frame[owner_col])
        agency = owner_ids.str.split("-").list.first()
        number = pl.Series(np.arange(frame.height) + 1).cast(pl.String).str.zfill(8)
        return frame.with_columns(
            owner_ids.alias(f"{'person' if owner_col == 'person' else 'episode'}_id"),
            (agency + pl.lit(f"-{prefix}") + number).alias(id_name),
        )

    out["events"] = numbered(raw["events"], "V", "event_id", person_ids, "person")
    assessments = numbered(raw["assessments"], "A", "assessment_id", person_ids, "person")
    out["assessments"] = assessments.with_columns(episode_ids.gather(assessments["person"]).alias("episode_id"))
    out["service_plans"] = raw["service_plans"].with_columns(
        person_ids.gather(raw["service_plans"]["person"]).alias("person_id")
    )
    out["interventions"] = numbered(raw["interventions"], "I", "intervention_id", episode_ids, "episode")

    for name, frame in out.items():
        out[name] = frame.select(
            (pl.col(f.name) if f.name in frame.columns else pl.lit(None)).cast(POLARS_TYPES[f.type]).alias(f.name)
            for f in contract.entity(name).fields
        )
    return out
