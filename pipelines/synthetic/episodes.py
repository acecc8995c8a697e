"""Episodes: who is care-managed, when follow-up ends, and the extra episodes of the multi-episode world.

A *client* is a person as one agency knows them (one row of that agency's ``persons`` export,
with that agency's pseudonym); a person followed by two agencies has two clients. Every episode
belongs to one client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from pipelines.synthetic.population import Agencies, People
from pipelines.synthetic.scenarios import Mechanisms

DAYS_PER_YEAR = 365.25
EXIT_REASONS = (["goal_reached", "withdrew", "moved", "funding_ended"], [0.4, 0.25, 0.2, 0.15])
RETURN_REASONS = {"goal_reached", "withdrew", "funding_ended"}
"""Episodes ended for these reasons may be followed by a return (not after a move)."""

KINDS = ("first", "return", "care_management_while_comparison", "comparison_elsewhere")
"""What an episode is to its person: their first; a return after an earlier episode ended; care
management started at the same integrated agency while the person's comparison follow-up goes on;
comparison follow-up at another (integrated) agency while care-managed by their first agency."""


@dataclass
class Episodes:
    person: np.ndarray
    client: np.ndarray
    agency: np.ndarray
    treated: np.ndarray
    start: np.ndarray
    fu_end: np.ndarray
    """Last day of follow-up (the extraction date while open)."""
    end_reason: np.ndarray
    kind: np.ndarray

    @property
    def n(self) -> int:
        return int(self.start.shape[0])


@dataclass
class Clients:
    person: np.ndarray
    agency: np.ndarray
    window_start: np.ndarray
    """First day of events this agency sends: the history before its first episode."""
    window_end: np.ndarray
    """Last day of events it sends: the end of its last episode."""
    first: np.ndarray
    """Whether it is the person's first agency (the others send copies of the same events)."""

    @property
    def n(self) -> int:
        return int(self.person.shape[0])


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _intercept_for_share(logit: np.ndarray, share: float) -> float:
    """The intercept that makes the mean propensity ``share`` (bisection: the mean is monotone in it)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if _logistic(logit + mid).mean() < share:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def assign(
    rng: np.random.Generator,
    people: People,
    mechanisms: Mechanisms,
    prior_admissions: np.ndarray,
    prior_emergency: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(care-managed, propensity) of each person's first episode.

    Remote and proximity agencies care-manage everyone they follow; in integrated agencies the
    other home-help clients are the comparison group, and who is care-managed depends on the
    scenario. ``prior_*``: unplanned admissions and emergency visits in the 365 days before the
    index date (what care managers see of the person's recent use).
    """
    baseline = -0.3 + 1.8 * people.risk
    if mechanisms.hidden_frailty:
        logit = (
            1.0 * people.risk
            + 1.2 * (prior_admissions >= 1)
            + 0.7 * (prior_admissions >= 3)
            + 0.5 * (prior_emergency >= 2)
        )
    else:
        logit = 1.8 * people.risk
    if mechanisms.crisis_enrolment:
        logit = logit + 1.8 * (people.crisis_onset >= 0)
    if mechanisms.nonlinear_selection:
        logit = logit + people.selection
    integrated = people.model == "integrated"
    if mechanisms.hidden_frailty or mechanisms.crisis_enrolment or mechanisms.nonlinear_selection:
        if integrated.any():
            # Keep the share care-managed in integrated agencies what it is in the baseline world.
            target = float(_logistic(baseline[integrated]).mean())
            logit = logit + _intercept_for_share(logit[integrated], target)
    else:
        logit = baseline
    propensity = _logistic(logit)
    u = rng.random(people.n)
    return np.where(integrated, u < propensity, True), np.where(integrated, propensity, 1.0)


@dataclass
class Endings:
    """Person-level ends of follow-up: death and institutional placement end every episode."""

    terminal_day: np.ndarray
    terminal_reason: np.ndarray


def person_endings(rng: np.random.Generator, people: People) -> Endings:
    t_death = rng.exponential(DAYS_PER_YEAR / (0.07 * np.exp(0.8 * people.risk)))
    t_place = rng.exponential(DAYS_PER_YEAR / (0.05 * np.exp(0.6 * people.risk + 0.4 * people.conditions["dementia"])))
    death_first = t_death <= t_place
    terminal = people.start + np.floor(np.minimum(t_death, t_place)).astype(np.int64)
    return Endings(terminal, np.where(death_first, "death", "placement"))


def _end_follow_up(
    rng: np.random.Generator,
    start: np.ndarray,
    treated: np.ndarray,
    terminal_day: np.ndarray,
    terminal_reason: np.ndarray,
    window_end: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(last day of follow-up, end reason or None) of episodes starting on ``start``."""
    n = start.shape[0]
    exit_day = start + np.floor(rng.exponential(DAYS_PER_YEAR / np.where(treated, 0.15, 0.12))).astype(np.int64)
    exit_reason = np.asarray(EXIT_REASONS[0], dtype=object)[rng.choice(4, size=n, p=EXIT_REASONS[1])]
    fu_end = np.minimum(np.minimum(exit_day, terminal_day), window_end)
    reason = np.where(terminal_day <= exit_day, terminal_reason, exit_reason).astype(object)
    reason[fu_end >= window_end] = None
    return fu_end, reason


def first_episodes(
    rng: np.random.Generator, people: People, treated: np.ndarray, endings: Endings, window_end: int
) -> Episodes:
    n = people.n
    fu_end, reason = _end_follow_up(
        rng, people.start, treated, endings.terminal_day, endings.terminal_reason, window_end
    )
    index = np.arange(n)
    return Episodes(
        person=index,
        client=index,
        agency=people.agency,
        treated=treated,
        start=people.start,
        fu_end=fu_end,
        end_reason=reason,
        kind=np.full(n, "first", dtype=object),
    )


def extra_episodes(
    rng: np.random.Generator,
    people: People,
    agencies: Agencies,
    first: Episodes,
    endings: Endings,
    window_start: int,
    window_end: int,
    last_start: int,
) -> tuple[Episodes, np.ndarray]:
    """The multi-episode world's second episodes, and the agency of a second client (-1: same agency).

    Each person gets at most one: a return to their agency after an episode that ended (30% of
    those eligible); care management at their integrated agency while their comparison follow-up
    goes on (30% of comparison clients); or comparison follow-up at another integrated agency,
    overlapping their care management (15% of people care-managed by a remote or proximity agency).
    No one is care-managed by two episodes at once.
    """
    n = people.n
    u = rng.random(n)
    gap = rng.geometric(1 / 120, n)
    offset = rng.random(n)
    shift = rng.integers(-180, 91, n)
    other_integrated = np.flatnonzero(agencies.model == "integrated")
    other_pick = rng.integers(0, max(other_integrated.shape[0], 1), n)
    returns_treated = np.where(first.treated, True, rng.random(n) < 0.5)

    alive_until = endings.terminal_day
    comparison = ~first.treated
    elsewhere_ok = first.treated & (people.model != "integrated") & (other_integrated.shape[0] > 0)
    returning_ok = np.isin(first.end_reason.astype(str), list(RETURN_REASONS)) & (first.fu_end + gap <= last_start)

    kind = np.full(n, None, dtype=object)
    start = np.full(n, -1, dtype=np.int64)
    # Care management while a comparison follow-up goes on: it starts during that follow-up.
    overlap_start = (
        first.start + 30 + np.floor(offset * np.maximum(first.fu_end - first.start - 30, 0)).astype(np.int64)
    )
    pick = comparison & (u < 0.3) & (overlap_start < first.fu_end) & (overlap_start <= last_start)
    kind[pick] = "care_management_while_comparison"
    start[pick] = overlap_start[pick]
    # Comparison follow-up at another integrated agency, from up to 6 months before to 3 after.
    elsewhere_start = np.clip(first.start + shift, window_start, last_start)
    pick = (kind == None) & elsewhere_ok & (u < 0.15) & (elsewhere_start < alive_until)  # noqa: E711
    kind[pick] = "comparison_elsewhere"
    start[pick] = elsewhere_start[pick]
    # A return after the first episode ended.
    pick = (kind == None) & returning_ok & (u >= 0.55) & (u < 0.85) & (first.fu_end + gap < alive_until)  # noqa: E711
    kind[pick] = "return"
    start[pick] = first.fu_end[pick] + gap[pick]

    chosen = np.flatnonzero(kind != None)  # noqa: E711
    chosen_kind = kind[chosen]
    treated = np.select(
        [chosen_kind == "care_management_while_comparison", chosen_kind == "comparison_elsewhere"],
        [True, False],
        returns_treated[chosen],
    ).astype(bool)
    other_agency = np.where(
        chosen_kind == "comparison_elsewhere",
        other_integrated[other_pick[chosen]] if other_integrated.shape[0] else -1,
        -1,
    )
    agency = np.where(other_agency >= 0, other_agency, first.agency[chosen])
    fu_end, reason = _end_follow_up(
        rng, start[chosen], treated, endings.terminal_day[chosen], endings.terminal_reason[chosen], window_end
    )
    extra = Episodes(
        person=chosen,
        client=np.full(chosen.shape[0], -1, dtype=np.int64),
        agency=agency,
        treated=treated,
        start=start[chosen],
        fu_end=fu_end,
        end_reason=reason,
        kind=chosen_kind,
    )
    return extra, other_agency


def combine(first: Episodes, extra: Episodes, other_agency: np.ndarray, history_days: int) -> tuple[Episodes, Clients]:
    """All episodes with their clients: a person's second agency makes a second client."""
    n = first.n
    new_client = np.flatnonzero(other_agency >= 0)
    client_person = np.concatenate([first.person, extra.person[new_client]])
    client_agency = np.concatenate([first.agency, other_agency[new_client]])
    extra_client = extra.person.copy()
    extra_client[new_client] = n + np.arange(new_client.shape[0])
    episodes = Episodes(
        person=np.concatenate([first.person, extra.person]),
        client=np.concatenate([first.client, extra_client]),
        agency=np.concatenate([first.agency, extra.agency]),
        treated=np.concatenate([first.treated, extra.treated]),
        start=np.concatenate([first.start, extra.start]),
        fu_end=np.concatenate([first.fu_end, extra.fu_end]),
        end_reason=np.concatenate([first.end_reason, extra.end_reason]),
        kind=np.concatenate([first.kind, extra.kind]),
    )
    m = client_person.shape[0]
    window_start = np.full(m, np.iinfo(np.int64).max)
    window_end = np.full(m, np.iinfo(np.int64).min)
    np.minimum.at(window_start, episodes.client, episodes.start - history_days)
    np.maximum.at(window_end, episodes.client, episodes.fu_end)
    clients = Clients(
        person=client_person,
        agency=client_agency,
        window_start=window_start,
        window_end=window_end,
        first=np.arange(m) < n,
    )
    return episodes, clients


def care_intervals(episodes: Episodes, n_people: int) -> tuple[np.ndarray, np.ndarray]:
    """Each person's care-managed episodes as (start, end) columns, -1 where there is none.

    At most two per person (a first episode and a return), never overlapping.
    """
    starts = np.full((n_people, 2), -1, dtype=np.int64)
    ends = np.full((n_people, 2), -1, dtype=np.int64)
    managed = np.flatnonzero(episodes.treated)
    order = managed[np.lexsort((episodes.start[managed], episodes.person[managed]))]
    person = episodes.person[order]
    slot = np.zeros(order.shape[0], dtype=np.int64)
    if order.shape[0] > 1:
        same = person[1:] == person[:-1]
        slot[1:] = same.astype(np.int64)
    starts[person, slot] = episodes.start[order]
    ends[person, slot] = episodes.fu_end[order]
    return starts, ends


def managed_since(
    starts: np.ndarray, ends: np.ndarray, person: np.ndarray, day: np.ndarray, lead: int = 0
) -> np.ndarray:
    """The start of the care-managed episode covering ``day`` for each (person, day), or -1.

    ``lead``: days before the start that already count (hours are arranged before enrolment).
    """
    s = starts[person]
    e = ends[person]
    inside = (s >= 0) & (day[:, None] >= s - lead) & (day[:, None] <= e)
    return np.max(np.where(inside, s, -1), axis=1)


def episode_details(
    rng: np.random.Generator,
    agencies: Agencies,
    people: People,
    episodes: Episodes,
    window_end: int,
    first_start: int,
    crisis: np.ndarray,
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """The episodes table (without identifiers), the care managers, and each episode's plan day (-1: none)."""
    n = episodes.n
    risk = people.risk[episodes.person]
    treated = episodes.treated
    model = agencies.model[episodes.agency]
    situations = ["prevention", "rupture", "hospital_discharge", "crisis", "carer_exhaustion", "administrative"]
    after_crisis = 1.5 * crisis
    logits = np.stack(
        [
            np.full(n, 0.6),
            np.zeros(n),
            -0.3 + 0.9 * risk + after_crisis,
            -0.6 + 0.9 * risk + after_crisis,
            np.zeros(n),
            np.full(n, -0.4),
        ],
        axis=1,
    )
    entry = np.asarray(situations, dtype=object)[categorical(rng, np.exp(logits))]

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
        referral_source[mask] = choice(rng, sources, probs, int(mask.sum()))
        payer_probs = [0.3, 0.2, 0.2, 0.2, 0.05, 0.05] if m == "remote" else [0.4, 0.03, 0.12, 0.3, 0.05, 0.1]
        payer[mask] = choice(rng, payers, payer_probs, int(mask.sum()))
    payer = np.where(treated, payer, "none")

    start = episodes.start
    referral = start - rng.geometric(np.where(model == "remote", 1 / 3, 1 / 8), n)
    plan = start + rng.geometric(1 / 21, n)
    plan_day = np.where(treated & (plan <= episodes.fu_end), plan, -1)

    # Care managers: enough full-time equivalents for about 25 active episodes each.
    agency_ids = agencies.agency_id
    care_manager_of = np.full(n, None, dtype=object)
    cm_rows: dict[str, list[Any]] = {"care_manager_id": [], "agency_id": [], "fte": []}
    span = max(window_end - first_start, 1)
    for a, agency_id in enumerate(agency_ids):
        members = np.flatnonzero((episodes.agency == a) & treated)
        active = (episodes.fu_end[members] - start[members]).sum() / span
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

    frame = pl.DataFrame(
        {
            "episode_number": np.arange(n),
            "client": episodes.client,
            "agency_id": agency_ids[episodes.agency],
            "care_manager_id": pl.Series(care_manager_of.tolist(), dtype=pl.String),
            "cohort": np.where(treated, "care_managed", "comparison"),
            "referral_date": to_date(referral),
            "first_contact_date": to_date(start),
            "plan_date": to_date(plan_day),
            "start_date": to_date(start),
            "end_date": to_date(np.where(episodes.fu_end >= window_end, -1, episodes.fu_end)),
            "end_reason": pl.Series(episodes.end_reason.tolist(), dtype=pl.String),
            "referral_source": referral_source,
            "payer": payer,
            "entry_situation": entry,
        },
        strict=False,
    ).with_columns(
        pl.when(pl.col("plan_date") == date(1969, 12, 31)).then(None).otherwise(pl.col("plan_date")).alias("plan_date"),
        pl.when(pl.col("end_date") == date(1969, 12, 31)).then(None).otherwise(pl.col("end_date")).alias("end_date"),
    )
    return frame, pl.DataFrame(cm_rows), plan_day


def to_date(days: np.ndarray) -> pl.Series:
    return pl.Series(days.astype(np.int32)).cast(pl.Date)


def categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows × categories) probability matrix."""
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random((probs.shape[0], 1))
    return np.minimum((u > cumulative).sum(axis=1), probs.shape[1] - 1)


def choice(rng: np.random.Generator, values: list[str], probs: list[float], size: int) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=size, p=p / p.sum())]
