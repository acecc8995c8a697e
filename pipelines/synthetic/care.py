"""Carers, their assessments, home-help hours and what care managers put in place.

Carer burden, carer hours and return to work are drawn in both worlds from the same random
numbers; the effect applies while the person is care-managed and grows over the first six
months of that care management.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.synthetic.episodes import DAYS_PER_YEAR, Clients, Episodes, choice, managed_since
from pipelines.synthetic.events import RETURN_TO_WORK_SHARE, Care, PersonEffects, poisson_events
from pipelines.synthetic.population import Agencies, People

ASSESSMENT_OFFSETS = (0, 182, 365)
"""Days after an episode's start when the agency assesses the person and the carer."""
HOURS_LEAD_DAYS = 15
"""Home-help hours arranged by a care manager count from this many days before enrolment."""


@dataclass
class Carers:
    frame: pl.DataFrame
    """One row per client with a carer (each agency records the carer)."""
    has_carer: np.ndarray
    employed: np.ndarray


def simulate_carers(rng: np.random.Generator, people: People, clients: Clients) -> Carers:
    n = people.n
    disabled, lives_alone = people.disabled, people.lives_alone
    has_carer = rng.random(n) < np.where(disabled, 0.8, 0.7)
    elderly_rel = np.where(
        ~lives_alone & (rng.random(n) < 0.65),
        "spouse",
        choice(
            rng,
            ["child", "child_in_law", "sibling", "other_family", "friend_neighbour"],
            [0.6, 0.1, 0.05, 0.1, 0.15],
            n,
        ),
    )
    disabled_rel = choice(rng, ["parent", "spouse", "sibling"], [0.6, 0.3, 0.1], n)
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
    for rel, probs in band_probs.items():
        mask = relationship == rel
        age_band[mask] = choice(rng, bands, probs, int(mask.sum()))
    employ_p = np.select([np.isin(age_band, ["under_40", "40_54"]), age_band == "55_64"], [0.8, 0.55], 0.05)
    employed = rng.random(n) < employ_p
    lives_with = np.where(relationship == "spouse", True, rng.random(n) < 0.2)
    client = np.flatnonzero(has_carer[clients.person])
    person = clients.person[client]
    frame = pl.DataFrame(
        {
            "client": client,
            "relationship": relationship[person],
            "age_band": age_band[person],
            "employed": employed[person],
            "lives_with_person": lives_with[person],
        }
    )
    return Carers(frame, has_carer, employed)


@dataclass
class Assessments:
    frame: pl.DataFrame
    """The export's rows (``episode`` index, ``client`` index) without identifiers."""
    zarit: pl.DataFrame
    """Every assessment with a carer in both worlds: episode, offset, zarit_treatment, zarit_control."""


def simulate_assessments(
    rng: np.random.Generator,
    agencies: Agencies,
    people: People,
    episodes: Episodes,
    carers: Carers,
    care: Care,
    effects: PersonEffects,
) -> Assessments:
    n_people = people.n
    offsets = np.asarray(ASSESSMENT_OFFSETS)
    episode = np.repeat(np.arange(episodes.n), offsets.shape[0])
    offset = np.tile(offsets, episodes.n)
    day = episodes.start[episode] + offset
    keep = day <= episodes.fu_end[episode]
    episode, offset, day = episode[keep], offset[keep], day[keep]
    person = episodes.person[episode]
    m = episode.shape[0]
    # Time since the person's first index date: the burden grows while nobody helps.
    years = (day - people.start[person]) / DAYS_PER_YEAR

    baseline = np.clip(rng.normal(36 + 6 * people.risk + 6 * people.conditions["dementia"], 11), 4, 84)
    noise = rng.normal(0, 4, m)
    since = managed_since(care.starts, care.ends, person, day)
    ramp = np.where(since >= 0, np.minimum((day - since) / 182.0, 1.0), 0.0)
    untreated = baseline[person] + 3.0 * years + noise
    zarit_control = np.clip(np.round(untreated), 0, 88)
    zarit = np.clip(np.round(untreated + effects.zarit_points[person] * ramp), 0, 88)
    with_zarit = carers.has_carer[person]

    # Some agencies send the 22 items, others only the total.
    item_level = (np.arange(agencies.n) % 3 == 0)[episodes.agency[episode]] & with_zarit
    items = _zarit_items(rng, zarit.astype(np.int64))

    hours0 = np.clip(rng.normal(18 + 12 * people.conditions["dementia"], 8), 2, 100)
    hours = np.clip(hours0[person] + effects.carer_hours[person] * ramp + rng.normal(0, 2, m), 0, 168)
    start_status = np.where(
        carers.employed,
        choice(rng, ["full_time", "part_time", "unpaid_leave"], [0.6, 0.25, 0.15], n_people),
        np.where(rng.random(n_people) < 0.1, "stopped_work", "not_in_labour_force"),
    )
    back_to_work = rng.random(m) < np.where(since >= 0, effects.return_to_work, RETURN_TO_WORK_SHARE)
    employment = np.where(
        (offset >= 365) & (start_status[person] == "unpaid_leave") & back_to_work, "full_time", start_status[person]
    )
    gir = people.gir
    gir_now = np.where((offset >= 365) & (gir[person] > 1) & (rng.random(m) < 0.2), gir[person] - 1, gir[person])
    frame = pl.DataFrame(
        {
            "episode": episode,
            "client": episodes.client[episode],
            "assessment_date": pl.Series(day.astype(np.int32)).cast(pl.Date),
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
    zarit_frame = pl.DataFrame(
        {
            "episode": episode[with_zarit],
            "offset_days": offset[with_zarit],
            "zarit_treatment": zarit[with_zarit],
            "zarit_control": zarit_control[with_zarit],
        }
    )
    return Assessments(frame, zarit_frame)


def _zarit_items(rng: np.random.Generator, totals: np.ndarray) -> pl.Series:
    """22 item scores (0-4) summing to each total: the remainder goes to random items."""
    base = totals // 22
    remainder = totals % 22
    order = np.argsort(rng.random((totals.shape[0], 22)), axis=1)
    items = base[:, None] + (order < remainder[:, None])
    frame = pl.DataFrame(items.astype(np.int64), schema=[f"i{k}" for k in range(22)], orient="row")
    return frame.select(pl.concat_str(pl.all().cast(pl.String), separator="|").alias("items"))["items"]


def _month_index(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def simulate_service_plans(
    rng: np.random.Generator,
    people: People,
    first_day: np.ndarray,
    last_day: np.ndarray,
    care: Care,
    effects: PersonEffects,
    interruptions: pl.DataFrame,
) -> pl.DataFrame:
    """Hours granted and delivered per person and month, from ``first_day`` to ``last_day`` of each person.

    ``interruptions``: the observed world's interruptions (person, day, restored), whose days
    without help come out of that month's delivered hours.
    """
    benefit, gir = people.benefit, people.gir
    helped = np.flatnonzero(benefit != "none")
    first = _month_index(first_day[helped])
    last = _month_index(last_day[helped])
    counts = last - first + 1
    person = np.repeat(helped, counts)
    month = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    apa_hours = np.asarray([0, 70, 55, 40, 25, 0, 0], dtype=float)
    granted_person = np.where(
        benefit == "PCH", np.round(rng.lognormal(np.log(100), 0.6, benefit.shape[0])), apa_hours[gir]
    )
    granted = np.minimum(granted_person[person], 744)
    month_day = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    # Nobody is care-managed before their first index date: only later months are looked up.
    later = np.flatnonzero(month_day >= people.start[person] - HOURS_LEAD_DAYS)
    better = np.zeros(person.shape[0], dtype=bool)
    if effects.detection_and_delivery:
        better[later] = care.covered(person[later], month_day[later], lead=HOURS_LEAD_DAYS)
    share = np.where(better, rng.beta(9, 1, person.shape[0]), rng.beta(8, 2.2, person.shape[0]))
    frame = pl.DataFrame(
        {
            "person": person,
            "month_day": month_day,
            "funder": pl.Series(benefit.astype(str)).gather(person),
            "hours_granted": granted,
            "delivered": np.round(granted * share * 2) / 2,
        }
    )
    lost = (
        interruptions.select(
            "person",
            pl.col("day").cast(pl.Int32).cast(pl.Date).alias("start"),
            pl.col("restored").cast(pl.Int32).cast(pl.Date).alias("restored"),
        )
        .with_columns(
            pl.col("start").dt.truncate("1mo").cast(pl.Int32).cast(pl.Int64).alias("month_day"),
            pl.col("start").dt.month_end().alias("month_end"),
        )
        .with_columns(
            (
                (pl.min_horizontal(pl.col("restored"), pl.col("month_end")) - pl.col("start")).dt.total_days()
                / pl.col("month_end").dt.day()
            )
            .clip(0, 1)
            .alias("lost_share")
        )
        .group_by(["person", "month_day"])
        .agg(pl.col("lost_share").sum().clip(0, 1))
    )
    frame = (
        frame.join(lost, on=["person", "month_day"], how="left")
        .with_columns((pl.col("delivered") * (1 - pl.col("lost_share").fill_null(0)) * 2).round(0) / 2)
        .sort(["person", "month_day"])
    )
    return frame.select(
        "person",
        "month_day",
        "funder",
        "hours_granted",
        pl.col("delivered").alias("hours_delivered"),
    )


def simulate_interventions(rng: np.random.Generator, episodes: Episodes, plan_day: np.ndarray) -> pl.DataFrame:
    treated = episodes.treated
    start, fu_end = episodes.start, episodes.fu_end
    idx = np.flatnonzero(treated)
    first = pl.DataFrame({"episode": idx, "day": start[idx], "intervention_type": "assessment_360"})
    has_plan = np.flatnonzero(plan_day >= 0)
    planned = pl.DataFrame({"episode": has_plan, "day": plan_day[has_plan], "intervention_type": "personal_plan"})
    others_episode, others_day = poisson_events(rng, np.where(treated, 3.0, 0.0), start, fu_end + 1)
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
    kind = choice(rng, kinds, [0.15, 0.12, 0.05, 0.08, 0.06, 0.08, 0.12, 0.25, 0.04, 0.05], others_episode.shape[0])
    others = pl.DataFrame({"episode": others_episode, "day": others_day, "intervention_type": kind})
    return (
        pl.concat([first, planned, others], how="vertical_relaxed")
        .sort(["episode", "day", "intervention_type"])
        .select("episode", pl.col("day").cast(pl.Int32).cast(pl.Date).alias("intervention_date"), "intervention_type")
    )
