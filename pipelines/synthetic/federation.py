"""A synthetic federation of care-management agencies with known true effects.

The simulation is vectorised (numpy, Polars) so that it scales to millions of persons, and fully
determined by its seed. It is built for testing estimators:

* **Named worlds** (``scenarios.py``): confounded assignment on observed covariates (baseline),
  enrolment after a crisis, a hidden frailty seen only through prior use, heterogeneous effects,
  non-linear selection, several and overlapping episodes; each with a null twin.
* **History first.** Each person's events are drawn for ``history_months`` before their index
  date before anyone is assigned, so that assignment can depend on that history (crises,
  prior use), as it does in practice.
* **Known effects, exactly.** Every event is drawn in both potential outcomes with common random
  numbers (``events.py``); the generator keeps them (``Federation.potential_outcomes``) and
  ``truth.py`` computes each study's sample ATT from them (``ground_truth["estimands"]``).
* **Independent random streams** per component (``STREAMS``): a null world uses exactly the random
  numbers of its twin, and scenarios share the people, agencies and dates they have in common.

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

from pipelines.contract import POLARS_TYPES, Contract, load_contract
from pipelines.synthetic import truth
from pipelines.synthetic.care import (
    simulate_assessments,
    simulate_carers,
    simulate_interventions,
    simulate_service_plans,
)
from pipelines.synthetic.episodes import (
    DAYS_PER_YEAR,
    Clients,
    Episodes,
    assign,
    care_intervals,
    combine,
    episode_details,
    extra_episodes,
    first_episodes,
    person_endings,
)
from pipelines.synthetic.events import (
    Care,
    all_events,
    benefit_grants,
    draw_events,
    person_effects,
    terminal_events,
)
from pipelines.synthetic.population import People, simulate_agencies, simulate_people
from pipelines.synthetic.scenarios import SCENARIOS, Crisis, TrueEffects, mechanisms_for

__all__ = ["EXPORT_FORMATS", "Federation", "FederationSpec", "TrueEffects", "generate_federation"]

EXPORT_FORMATS = ("csv_cp1252", "csv_utf8", "xlsx", "parquet")
"""How agencies send their exports, assigned to agencies in turn."""

EPOCH = date(1970, 1, 1)
STREAMS = (
    "agencies",
    "people",
    "frailty",
    "crisis",
    "history",
    "assignment",
    "endings",
    "follow_up_ends",
    "multi",
    "earlier_history",
    "events",
    "grants",
    "episodes",
    "carers",
    "assessments",
    "service_plans",
    "interventions",
    "copies",
)
"""One independent random stream per component, in this order (never reorder: seeds would change)."""
RECENT_USE_DAYS = 365
"""Assignment may depend on unplanned admissions and emergency visits in this many days before the index date."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FederationSpec:
    agencies: int = 12
    persons: int = 3_000
    months: int = 24
    """Months before the extraction date in which episodes start (and are followed)."""
    seed: int = 2026
    end_date: date = date(2026, 6, 30)
    effects: TrueEffects = field(default_factory=TrueEffects)
    scenario: str = "baseline"
    null: bool = False
    """No effect of care management on any outcome (everything else identical for the same seed)."""
    history_months: int = 24
    """Months of events agencies send before each episode's start."""
    crisis: Crisis = field(default_factory=Crisis)
    """The referral crisis of ``crisis_enrolment`` worlds (ignored in others): its window, kind and length."""

    def validate(self) -> None:
        if self.agencies < 3:
            raise ValueError("--agencies must be at least 3 (one per agency model: remote, proximity, integrated)")
        if self.persons < 1:
            raise ValueError("--persons must be at least 1")
        if self.months < 3:
            raise ValueError("--months must be at least 3: episodes start in those months and need follow-up")
        if self.history_months < 12:
            raise ValueError("--history-months must be at least 12: studies compare the year before the index date")
        mechanisms_for(self.scenario)
        self.effects.validate()
        self.crisis.validate()

    @property
    def true_effects(self) -> TrueEffects:
        return TrueEffects.none() if self.null else self.effects


@dataclass
class Federation:
    """Every contract entity for the whole federation, plus what only the generator knows."""

    tables: dict[str, pl.DataFrame]
    export_format: dict[str, str]
    ground_truth: dict[str, Any]
    potential_outcomes: truth.PotentialOutcomes


def _days(d: date) -> int:
    return (d - EPOCH).days


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)}


def _recent_use(history: pl.DataFrame, people: People, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Unplanned admissions and emergency visits in the ``days`` before each person's index date."""
    recent = history.filter(pl.col("day") >= pl.Series(people.start - days).gather(history["person"]))
    admissions = recent.filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned"))
    visits = recent.filter(pl.col("event_type") == "emergency_visit")
    return (
        np.bincount(admissions["person"].to_numpy(), minlength=people.n),
        np.bincount(visits["person"].to_numpy(), minlength=people.n),
    )


def generate_federation(spec: FederationSpec, progress: Progress | None = None) -> Federation:
    """Simulate a federation. Deterministic for a given spec."""
    spec.validate()
    say = progress or (lambda _message: None)
    rng = _streams(spec.seed)
    contract = load_contract()
    mechanisms = mechanisms_for(spec.scenario)
    effects = spec.true_effects

    window_end = _days(spec.end_date)
    first_start = window_end - round(spec.months * DAYS_PER_YEAR / 12)
    last_start = window_end - 30
    history_days = round(spec.history_months * DAYS_PER_YEAR / 12)

    say(f"agencies: {spec.agencies}")
    agencies = simulate_agencies(rng["agencies"], spec.agencies)
    say(f"persons: {spec.persons:,} ({spec.scenario}{', null' if spec.null else ''})")
    people = simulate_people(
        rng["people"],
        rng["frailty"],
        rng["crisis"],
        spec.persons,
        agencies,
        mechanisms,
        first_start,
        last_start,
        spec.crisis,
    )
    effect = person_effects(people, effects, mechanisms.heterogeneous_effects)

    say("history before the index dates")
    history = draw_events(
        rng["history"], people, mechanisms, people.start - history_days, people.start, effect, None, spec.crisis
    )
    prior_admissions, prior_emergency = _recent_use(history, people, RECENT_USE_DAYS)
    treated, propensity = assign(rng["assignment"], people, mechanisms, prior_admissions, prior_emergency)

    say("episodes and follow-up")
    endings = person_endings(rng["endings"], people)
    first = first_episodes(rng["follow_up_ends"], people, treated, endings, window_end)
    extra, other_agency = extra_episodes(
        rng["multi"], people, agencies, first, endings, first_start, window_end, last_start
    )
    if not mechanisms.multi_episode:
        keep = np.zeros(extra.n, dtype=bool)
        extra = Episodes(*(getattr(extra, f)[keep] for f in Episodes.__dataclass_fields__))
        other_agency = other_agency[keep]
    episodes, clients = combine(first, extra, other_agency, history_days)
    care = Care(*care_intervals(episodes, people.n))
    person_first = np.full(people.n, np.iinfo(np.int64).max)
    np.minimum.at(person_first, clients.person, clients.window_start)
    person_last = np.full(people.n, np.iinfo(np.int64).min)
    np.maximum.at(person_last, episodes.person, episodes.fu_end)

    say("events")
    earlier = draw_events(
        rng["earlier_history"], people, mechanisms, person_first, people.start - history_days, effect, None,
        spec.crisis,
    )  # fmt: skip
    follow = draw_events(rng["events"], people, mechanisms, people.start, person_last + 1, effect, care, spec.crisis)
    grants = benefit_grants(
        rng["grants"], people, episodes.person, episodes.start, episodes.fu_end, episodes.treated, effect
    )
    ended = np.unique(episodes.person[np.isin(episodes.end_reason.astype(str), ["death", "placement"])])
    terminal = terminal_events(ended, endings.terminal_day[ended], endings.terminal_reason[ended])
    events = all_events([history, earlier, follow, grants, terminal], person_last, window_end)

    say("episodes, carers and assessments")
    crisis = np.where(episodes.kind == "first", people.crisis_onset[episodes.person] >= 0, False)
    episode_frame, care_managers, plan_day = episode_details(
        rng["episodes"], agencies, people, episodes, window_end, first_start, crisis
    )
    carers = simulate_carers(rng["carers"], people, clients)
    assessments = simulate_assessments(rng["assessments"], agencies, people, episodes, carers, care, effect)

    say("service plans and interventions")
    observed = events.filter(pl.col("under_treatment"))
    interruptions = observed.filter(pl.col("event_type") == "service_interruption").select(
        "person", "day", pl.col("restored_treatment").alias("restored")
    )
    service_plans = simulate_service_plans(
        rng["service_plans"], people, person_first, person_last, care, effect, interruptions
    )
    interventions = simulate_interventions(rng["interventions"], episodes, plan_day)

    say("agency exports")
    ids = _identifiers(agencies.agency_id, clients, episodes)
    tables = _export_tables(
        contract,
        rng["copies"],
        ids,
        agencies,
        people,
        clients,
        episodes,
        {
            "care_managers": care_managers,
            "episodes": episode_frame,
            "carers": carers.frame,
            "events": observed,
            "assessments": assessments.frame,
            "service_plans": service_plans,
            "interventions": interventions,
        },
    )
    potential = _potential_outcomes(ids, agencies, people, episodes, events, assessments.zarit)

    naive = _naive_rate_ratio(observed, episodes)
    in_comparison = ~treated
    ground_truth = {
        "generator": "parcours synthetic federation",
        "contract_version": contract.version,
        "scenario": spec.scenario,
        "null": spec.null,
        "scenario_description": " ".join(SCENARIOS[p] for p in spec.scenario.split("+")),
        "spec": {**asdict(spec), "end_date": spec.end_date.isoformat()},
        "window": {
            "start": (EPOCH + timedelta(days=int(first_start - history_days))).isoformat(),
            "first_index_date": (EPOCH + timedelta(days=int(first_start))).isoformat(),
            "end": spec.end_date.isoformat(),
            "history_days": history_days,
        },
        "design_effects": asdict(effects),
        "sample_att": _sample_att(potential),
        "estimands": truth.estimands(potential, 365),
        "assignment": _assignment_note(mechanisms.names(), spec.crisis),
        "confounding": {
            "mean_risk_care_managed": float(people.risk[treated].mean()),
            "mean_risk_comparison": float(people.risk[in_comparison].mean()) if in_comparison.any() else None,
            "mean_propensity_integrated": float(propensity[people.model == "integrated"].mean())
            if (people.model == "integrated").any()
            else None,
            "naive_unplanned_rate_ratio_after_index": naive,
            "note": (
                "Higher-risk clients of integrated agencies are more likely to be care-managed, so the naive "
                "rate ratio (care-managed over comparison) is biased upwards from the true rate ratio."
            ),
        },
        "episodes": _episode_summary(episodes, clients),
        "rows": {name: frame.height for name, frame in tables.items()},
    }
    export_format = {
        agency_id: EXPORT_FORMATS[i % len(EXPORT_FORMATS)] for i, agency_id in enumerate(agencies.agency_id)
    }
    return Federation(tables, export_format, ground_truth, potential)


def _assignment_note(mechanisms: list[str], crisis: Crisis) -> dict[str, Any]:
    """What care-managed status depends on, in study covariate names where the studies have one."""
    observed = [
        "age", "disabled", "gir_1_2", "gir_3_4", "lives_alone", "heart_failure", "copd", "dementia", "diabetes",
        "frailty", "brain_injury",
    ]  # fmt: skip
    unobserved: list[str] = []
    if "hidden_frailty" in mechanisms:
        observed += [
            "prior_unplanned_admissions (365 days: at least 1, at least 3)",
            "prior_emergency_visits_365d (>= 2)",
        ]
        unobserved.append("frailty (drives outcomes only; seen through prior use)")
    if "crisis_enrolment" in mechanisms:
        low, high = crisis.onset_days
        after = " (pre-index rates only)"
        if crisis.days_after_index:
            after = f", and {crisis.days_after_index} days after it"
        unobserved.append(f"{crisis.kind} crisis starting {low}-{high} days before the index date{after}")
    if "nonlinear_selection" in mechanisms:
        observed += ["age >= 90 and GIR 1-2", "dementia and living alone", "3+ conditions not living alone", "age^2"]
    if "multi_episode" in mechanisms:
        observed.append("a later episode's cohort is set by its kind (see episodes)")
    return {"integrated_agencies_depend_on": observed, "unobserved": unobserved}


def _identifiers(agency_ids: np.ndarray, clients: Clients, episodes: Episodes) -> dict[str, pl.Series]:
    """Each client's person pseudonym (numbered within its agency) and each episode's pseudonym."""
    order = np.lexsort((np.arange(clients.n), clients.agency))
    sorted_agency = clients.agency[order]
    first = np.searchsorted(sorted_agency, sorted_agency, side="left")
    number = np.empty(clients.n, dtype=np.int64)
    number[order] = np.arange(clients.n) - first + 1
    client_agency = pl.Series(agency_ids[clients.agency].astype(str))
    person_ids = client_agency + "-P" + pl.Series(number).cast(pl.String).str.zfill(6)
    episode_agency = pl.Series(agency_ids[episodes.agency].astype(str))
    episode_ids = episode_agency + "-E" + pl.Series(np.arange(episodes.n) + 1).cast(pl.String).str.zfill(7)
    linkage = "LK" + pl.Series(np.arange(int(clients.person.max(initial=-1)) + 1) + 1).cast(pl.String).str.zfill(8)
    return {
        "person_id": person_ids.alias("person_id"),
        "client_agency": client_agency,
        "episode_id": episode_ids.alias("episode_id"),
        "linkage_id": linkage.alias("linkage_id"),
    }


def _export_tables(
    contract: Contract,
    rng: np.random.Generator,
    ids: dict[str, pl.Series],
    agencies: Any,
    people: People,
    clients: Clients,
    episodes: Episodes,
    raw: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    """Every entity as the agencies send it: identifiers, each agency's share of events and hours, contract order."""
    person_ids, episode_ids = ids["person_id"], ids["episode_id"]
    p = clients.person
    out: dict[str, pl.DataFrame] = {
        "agencies": pl.DataFrame(
            {"agency_id": agencies.agency_id, "model": agencies.model, "departement": agencies.departement}
        ),
        "care_managers": raw["care_managers"],
        "persons": pl.DataFrame(
            {
                "person_id": person_ids,
                "agency_id": ids["client_agency"],
                "birth_year": people.birth_year[p],
                "sex": people.sex[p],
                "departement": people.departement[p],
                "lives_alone": people.lives_alone[p],
                "main_conditions": people.conditions_text.gather(p),
                "gir_at_intake": pl.Series(people.gir[p]).replace(0, None),
                "benefit": people.benefit[p],
                "linkage_id": ids["linkage_id"].gather(p),
            },
            strict=False,
        ),
    }
    carer_person = person_ids.gather(raw["carers"]["client"])
    out["carers"] = raw["carers"].with_columns(
        carer_person.alias("person_id"), (carer_person + "-C1").alias("carer_id")
    )
    out["episodes"] = raw["episodes"].with_columns(
        person_ids.gather(raw["episodes"]["client"]).alias("person_id"), episode_ids.alias("episode_id")
    )

    # Each agency sends the events and hours of its own window; a second agency's copy of an
    # admission sometimes lacks the diagnosis.
    windows = pl.DataFrame(
        {
            "person": p,
            "client": np.arange(clients.n),
            "window_start": clients.window_start,
            "window_end": clients.window_end,
            "first_agency": clients.first,
        }
    )
    events = _in_windows(
        raw["events"],
        windows,
        pl.col("day").is_between(pl.col("window_start"), pl.col("window_end")),
        ["client", "day", "event_type"],
    )
    copy_without_diagnosis = pl.Series(rng.random(events.height) < 0.2)
    known = lambda column: pl.when(pl.col(column) <= pl.col("window_end")).then(pl.col(column))  # noqa: E731
    events = events.with_columns(
        pl.when(pl.col("event_type") == "hospital_admission")
        .then(pl.col("discharge").replace(-1, None))
        .when(pl.col("event_type") == "service_interruption")
        .then(known("restored_treatment"))
        .alias("end_day"),
        known("detected_treatment").alias("detected_day"),
        pl.when(~pl.col("first_agency") & copy_without_diagnosis)
        .then(None)
        .otherwise(pl.col("diagnosis_group"))
        .alias("diagnosis_group"),
    )
    client_ids = person_ids.gather(events["client"])
    numbers = pl.Series(np.arange(events.height) + 1).cast(pl.String).str.zfill(8)
    out["events"] = events.select(
        (client_ids.str.split("-").list.first() + "-V" + numbers).alias("event_id"),
        client_ids.alias("person_id"),
        "event_type",
        pl.col("day").cast(pl.Int32).cast(pl.Date).alias("event_date"),
        pl.col("end_day").cast(pl.Int32).cast(pl.Date).alias("end_date"),
        "planned",
        "diagnosis_group",
        pl.col("detected_day").cast(pl.Int32).cast(pl.Date).alias("detected_date"),
        "benefit",
    )

    assessments = raw["assessments"]
    numbers = pl.Series(np.arange(assessments.height) + 1).cast(pl.String).str.zfill(8)
    assessment_person = person_ids.gather(assessments["client"])
    out["assessments"] = assessments.with_columns(
        (assessment_person.str.split("-").list.first() + "-A" + numbers).alias("assessment_id"),
        assessment_person.alias("person_id"),
        episode_ids.gather(assessments["episode"]).alias("episode_id"),
    )

    month = lambda day: pl.col(day).cast(pl.Int32).cast(pl.Date).dt.truncate("1mo")  # noqa: E731
    plans = _in_windows(
        raw["service_plans"],
        windows,
        pl.col("month_day").cast(pl.Int32).cast(pl.Date).is_between(month("window_start"), month("window_end")),
        ["client", "month_day"],
    )
    out["service_plans"] = plans.select(
        person_ids.gather(plans["client"]).alias("person_id"),
        pl.col("month_day").cast(pl.Int32).cast(pl.Date).alias("month"),
        "funder",
        "hours_granted",
        "hours_delivered",
    )
    interventions = raw["interventions"]
    numbers = pl.Series(np.arange(interventions.height) + 1).cast(pl.String).str.zfill(8)
    intervention_episode = episode_ids.gather(interventions["episode"])
    out["interventions"] = interventions.with_columns(
        (intervention_episode.str.split("-").list.first() + "-I" + numbers).alias("intervention_id"),
        intervention_episode.alias("episode_id"),
    )

    for name, frame in out.items():
        out[name] = frame.select(
            (pl.col(f.name) if f.name in frame.columns else pl.lit(None)).cast(POLARS_TYPES[f.type]).alias(f.name)
            for f in contract.entity(name).fields
        )
    return out


def _in_windows(rows: pl.DataFrame, windows: pl.DataFrame, inside: pl.Expr, order: list[str]) -> pl.DataFrame:
    """Each agency's copy of its persons' rows that fall in its window (``inside``), ordered by ``order``.

    When every person has one agency its window holds all their rows: no join is needed.
    """
    if windows.height == windows["person"].n_unique():
        one = windows.sort("person")
        return rows.with_columns(
            *(one[c].gather(rows["person"]).alias(c) for c in ("client", "window_start", "window_end", "first_agency"))
        ).sort(order, maintain_order=True)
    return rows.join(windows, on="person").filter(inside).sort(order, maintain_order=True)


def _bands(people: People, person: np.ndarray, start: np.ndarray) -> dict[str, Any]:
    gir = people.gir[person]
    start_year = start.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    age = start_year - people.birth_year[person]
    return {
        "gir_band": np.select(
            [(gir >= 1) & (gir <= 2), (gir >= 3) & (gir <= 4), gir >= 5], ["GIR 1-2", "GIR 3-4", "GIR 5-6"], "unknown"
        ),
        "age_band": np.select(
            [age < 60, age < 75, age < 85, age < 95], ["under 60", "60-74", "75-84", "85-94"], "95 and over"
        ),
        "lives_alone": people.lives_alone[person],
    }


def _potential_outcomes(
    ids: dict[str, pl.Series],
    agencies: Any,
    people: People,
    episodes: Episodes,
    events: pl.DataFrame,
    zarit: pl.DataFrame,
) -> truth.PotentialOutcomes:
    managed = np.flatnonzero(episodes.treated)
    counts = np.bincount(episodes.person, minlength=people.n)
    person = episodes.person[managed]
    start, fu_end = episodes.start[managed], episodes.fu_end[managed]
    to_date = lambda days: pl.Series(days.astype(np.int32)).cast(pl.Date)  # noqa: E731
    episode_id = ids["episode_id"].gather(managed)
    frame = pl.DataFrame(
        {
            "episode_id": episode_id,
            "person_id": ids["person_id"].gather(episodes.client[managed]),
            "agency_id": agencies.agency_id[episodes.agency[managed]].astype(str),
            "agency_model": agencies.model[episodes.agency[managed]].astype(str),
            "start_date": to_date(start),
            "follow_up_end": to_date(fu_end),
            "follow_up_days": fu_end - start + 1,
            **_bands(people, person, start),
            "kind": episodes.kind[managed].astype(str),
            "other_episodes": counts[person] - 1,
        }
    )
    keys = pl.DataFrame(
        {"episode": managed, "episode_id": episode_id, "person": person, "start": start, "fu_end": fu_end}
    )
    kept = ["hospital_admission", "emergency_visit", "fall", "service_interruption"]
    candidates = events.filter(
        pl.col("event_type").is_in(kept) & (pl.col("day") >= pl.Series(people.start).gather(events["person"]))
    )
    in_follow_up = candidates.join(keys, on="person").filter(
        pl.col("day").is_between(pl.col("start"), pl.col("fu_end") + truth.LOOKAHEAD_DAYS)
    )
    days_from_index = (pl.col("day") - pl.col("start")).alias("days_from_index")
    outcome_events = in_follow_up.filter(pl.col("event_type").is_in(["hospital_admission", "emergency_visit", "fall"]))
    interruptions = in_follow_up.filter(
        (pl.col("event_type") == "service_interruption") & (pl.col("day") <= pl.col("fu_end"))
    )
    return truth.PotentialOutcomes(
        episodes=frame,
        events=outcome_events.select(
            "episode_id",
            "event_type",
            pl.col("day").cast(pl.Int32).cast(pl.Date).alias("event_date"),
            days_from_index,
            "planned",
            "diagnosis_group",
            "under_treatment",
            "under_control",
        ).sort(["episode_id", "event_date", "event_type"], maintain_order=True),
        interruptions=interruptions.select(
            "episode_id",
            pl.col("day").cast(pl.Int32).cast(pl.Date).alias("event_date"),
            days_from_index,
            pl.col("restored_treatment").cast(pl.Int32).cast(pl.Date).alias("restored_under_treatment"),
            pl.col("restored_control").cast(pl.Int32).cast(pl.Date).alias("restored_under_control"),
        ).sort(["episode_id", "event_date"], maintain_order=True),
        assessments=zarit.join(keys.select("episode", "episode_id"), on="episode")
        .select(
            "episode_id",
            pl.col("offset_days").alias("days_from_index"),
            pl.col("zarit_treatment").alias("zarit_under_treatment"),
            pl.col("zarit_control").alias("zarit_under_control"),
        )
        .sort(["episode_id", "days_from_index"]),
    )


def _sample_att(po: truth.PotentialOutcomes) -> dict[str, Any]:
    """The whole follow-up's sample effects (kept from earlier versions; ``estimands`` follows the studies)."""
    admissions = truth.unplanned_admissions(po, None)
    years = admissions.denominator
    observed, counterfactual = int(admissions.observed), int(admissions.counterfactual)
    interruptions = po.interruptions
    repair_t = (pl.col("restored_under_treatment") - pl.col("event_date")).dt.total_days()
    repair_c = (pl.col("restored_under_control") - pl.col("event_date")).dt.total_days()
    repairs = interruptions.select(repair_t.alias("t"), repair_c.alias("c"))
    at_12 = po.assessments.filter(pl.col("days_from_index") == 365)
    return {
        "unplanned_admissions": {
            "treated_person_years": years,
            "observed": observed,
            "counterfactual": counterfactual,
            "avoided": counterfactual - observed,
            "rate_per_1000py_observed": admissions.treated_value,
            "rate_per_1000py_counterfactual": admissions.counterfactual_value,
            "rate_difference_per_1000py": admissions.att,
            "rate_ratio": observed / counterfactual if counterfactual else None,
        },
        "rupture_repair_days": {
            "n_ruptures": repairs.height,
            "observed_mean": float(repairs["t"].mean()) if repairs.height else None,  # type: ignore[arg-type]
            "counterfactual_mean": float(repairs["c"].mean()) if repairs.height else None,  # type: ignore[arg-type]
            "difference_days": float((repairs["t"] - repairs["c"]).mean()) if repairs.height else None,  # type: ignore[arg-type]
        },
        "zarit_12_months": {
            "n_treated_with_12_month_assessment": at_12.height,
            "difference_points": float((at_12["zarit_under_treatment"] - at_12["zarit_under_control"]).mean())  # type: ignore[arg-type]
            if at_12.height
            else None,
            "observed_mean": float(at_12["zarit_under_treatment"].mean()) if at_12.height else None,  # type: ignore[arg-type]
            "counterfactual_mean": float(at_12["zarit_under_control"].mean()) if at_12.height else None,  # type: ignore[arg-type]
        },
    }


def _naive_rate_ratio(observed: pl.DataFrame, episodes: Episodes) -> float | None:
    """Care-managed over comparison unplanned admission rate after the index date, unadjusted."""
    frame = pl.DataFrame(
        {"person": episodes.person, "treated": episodes.treated, "start": episodes.start, "fu_end": episodes.fu_end}
    )
    if frame["treated"].all():
        return None
    unplanned = observed.filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned"))
    counted = (
        unplanned.select("person", "day")
        .join(frame, on="person")
        .filter(pl.col("day").is_between(pl.col("start"), pl.col("fu_end")))
        .group_by("treated")
        .len()
    )
    years = frame.group_by("treated").agg(((pl.col("fu_end") - pl.col("start") + 1).sum() / DAYS_PER_YEAR).alias("py"))
    rates = counted.join(years, on="treated").with_columns((pl.col("len") / pl.col("py")).alias("rate"))
    by_arm = dict(zip(rates["treated"].to_list(), rates["rate"].to_list(), strict=True))
    if not by_arm.get(False):
        return None
    return float(by_arm.get(True, 0.0) / by_arm[False])


def _episode_summary(episodes: Episodes, clients: Clients) -> dict[str, Any]:
    counts = np.bincount(episodes.person)
    agencies_per_person = np.bincount(clients.person)
    kinds, kind_counts = np.unique(episodes.kind.astype(str), return_counts=True)
    return {
        "episodes": episodes.n,
        "persons": int((counts > 0).sum()),
        "persons_with_several_episodes": int((counts > 1).sum()),
        "persons_at_two_agencies": int((agencies_per_person > 1).sum()),
        "by_kind": {str(k): int(c) for k, c in zip(kinds, kind_counts, strict=True)},
    }
