"""Named synthetic worlds: the mechanisms a federation is simulated with, and their true effects.

A scenario is a set of mechanisms (``Mechanisms``). The named scenarios are the contract the
validation relies on; a name may also join several with ``+`` (``crisis_enrolment+multi_episode``)
for worlds closer to what an independently written federation looks like. Every scenario has a
**null** version (``null=True``): care management changes no outcome at all, and everything
else (people, assignment, history, follow-up) is drawn from the same random numbers, so the
null world and its non-null twin differ only in what care management does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

SCENARIOS: dict[str, str] = {
    "baseline": (
        "Confounded assignment on observed covariates only: in integrated agencies people at higher observed risk "
        "are more likely to be care-managed. Rates are log-linear in the observed risk score times a mild "
        "unobserved frailty that does not drive assignment."
    ),
    "crisis_enrolment": (
        "A quarter of people go through a crisis in the 14 to 120 days before their index date (a hospital stay, an "
        "emergency visit): all their unplanned admissions and emergency visits are four times as frequent until the "
        "index date, then return to their usual level. A crisis makes care management much more likely (people are "
        "referred after a discharge): the treated arm's admissions peak just before enrolment and regress to the "
        "mean after it (an Ashenfelter dip). The crisis itself is not recorded; it shows only as recent admissions."
    ),
    "hidden_frailty": (
        "A strong unobserved frailty (gamma, variance 2/3) multiplies every admission and emergency rate; rates are "
        "not log-linear in the observed covariates (additive terms with thresholds, an interaction and a "
        "saturation). Care managers select people on their prior use (at least 1 and at least 3 unplanned admissions, "
        "at least 2 emergency visits in the 365 days before the index date), the only trace of the frailty in the data."
    ),
    "heterogeneous_effects": (
        "The effects of care management differ by GIR band and living alone (strongest for people in GIR 1-2 living "
        "alone, almost none in GIR 5-6 living with someone): the ATT is the average over the treated sample."
    ),
    "nonlinear_selection": (
        "Assignment depends on interactions, thresholds and a square of observed covariates (aged 90 or over and in "
        "GIR 1-2; dementia and living alone; three or more conditions when not living alone; age squared), which "
        "also shift admission rates: a logistic model linear in the covariates is misspecified."
    ),
    "multi_episode": (
        "Persons with several episodes: some return to care management after an episode ends, some comparison "
        "clients of an integrated agency start care management there while their home-help follow-up goes on, and "
        "some care-managed people are at the same time comparison clients of another (integrated) agency, which "
        "sends the same hospital admissions under its own pseudonym. Every agency sends the federation-wide "
        "linkage pseudonym."
    ),
}
"""Each named scenario and what it simulates (the contract with the validation)."""


@dataclass(frozen=True)
class Mechanisms:
    """The switches a scenario turns on (``baseline`` turns none)."""

    crisis_enrolment: bool = False
    hidden_frailty: bool = False
    heterogeneous_effects: bool = False
    nonlinear_selection: bool = False
    multi_episode: bool = False

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


def mechanisms_for(scenario: str) -> Mechanisms:
    """The mechanisms of a scenario name: one of ``SCENARIOS``, or several joined with ``+``."""
    parts = [p.strip() for p in scenario.split("+")]
    unknown = [p for p in parts if p not in SCENARIOS]
    if unknown or not parts:
        raise ValueError(f"unknown scenario {scenario!r}: choose among {', '.join(SCENARIOS)} (or join them with +)")
    if "baseline" in parts and len(parts) > 1:
        raise ValueError("baseline cannot be combined with another scenario: it is the world with none of them")
    return Mechanisms(**{p: True for p in parts if p != "baseline"})


CrisisKind = Literal["hospital", "fall", "carer"]
CRISIS_KINDS: dict[str, str] = {
    "hospital": "starts with an unplanned admission (70%) or an emergency visit; admissions and emergency visits "
    "are more frequent during it",
    "fall": "starts with a fall and an emergency visit (an admission for the injury 40% of the time); falls and "
    "emergency visits are more frequent during it, other admissions are not",
    "carer": "the family carer's exhaustion: no event marks its start; admissions, emergency visits and falls are "
    "more frequent during it (nobody watches over the person)",
}
"""What a crisis is, by kind: which event starts it and which events it makes more frequent."""


@dataclass(frozen=True)
class Crisis:
    """The referral crisis of ``crisis_enrolment`` worlds: when it starts, what it is, how long it lasts.

    A study is written without knowing any of this (an independently written federation has its
    own referral process): the validation varies it to show that no study is tuned to one window
    or one kind of crisis.
    """

    onset_days: tuple[int, int] = (14, 120)
    """The crisis starts this many days before the index date (uniform between the two)."""
    kind: CrisisKind = "hospital"
    rate_multiplier: float = 4.0
    """Rates of the events the crisis raises are this many times their usual level during it."""
    days_after_index: int = 0
    """The crisis goes on this many days after the index date (0: it ends at enrolment). Its excess events
    then fall in the outcome window, in both potential outcomes: confounding no covariate records."""

    def validate(self) -> None:
        low, high = self.onset_days
        if not 1 <= low <= high:
            raise ValueError("crisis onset days must satisfy 1 <= first <= last (days before the index date)")
        if self.kind not in CRISIS_KINDS:
            raise ValueError(f"unknown crisis kind {self.kind!r}: choose among {', '.join(CRISIS_KINDS)}")
        if self.rate_multiplier < 1:
            raise ValueError("a crisis multiplies rates by at least 1")
        if self.days_after_index < 0:
            raise ValueError("a crisis cannot end before the index date (days_after_index < 0)")

    def multipliers(self) -> dict[str, float]:
        """Rate multipliers during the crisis for admissions, emergency visits (without admission) and falls."""
        m = self.rate_multiplier
        if self.kind == "hospital":
            return {"admissions": m, "emergency": m, "falls": 1.0}
        if self.kind == "fall":
            return {"admissions": 1.0, "emergency": m, "falls": m}
        return {"admissions": m, "emergency": m, "falls": m}

    @classmethod
    def parse(cls, text: str) -> Crisis:
        """``kind:first-last[:multiplier[:days after]]``, e.g. ``fall:30-240`` or ``hospital:14-120:4:60``."""
        parts = text.split(":")
        try:
            first, last = (int(v) for v in parts[1].split("-"))
            crisis = cls(
                onset_days=(first, last),
                kind=parts[0],  # type: ignore[arg-type]
                rate_multiplier=float(parts[2]) if len(parts) > 2 else 4.0,
                days_after_index=int(parts[3]) if len(parts) > 3 else 0,
            )
        except (IndexError, ValueError) as exc:
            raise ValueError(f"crisis {text!r}: write it kind:first-last[:multiplier[:days after]]") from exc
        crisis.validate()
        return crisis

    def describe(self) -> str:
        text = f"{self.kind}:{self.onset_days[0]}-{self.onset_days[1]}:{self.rate_multiplier:g}"
        return f"{text}:{self.days_after_index}" if self.days_after_index else text


RESPITE_MAX_RATIO = 4.0
"""Respite stays are drawn at this many times the untreated rate and thinned, so that a null world
uses the same random numbers as its twin."""


@dataclass(frozen=True)
class TrueEffects:
    """Design effects of care management while a person is care-managed (none before enrolment).

    Mortality and institutional placement are left unaffected on purpose (their hazard ratios
    must stay 1), so that person-time is the same under both potential outcomes and every rate's
    denominator is what the treated were observed for.
    """

    unplanned_admission_rate_ratio: float = 0.75
    """On admissions care management can prevent: not on the negative-control diagnosis groups."""
    emergency_visit_rate_ratio: float = 0.85
    """On emergency visits not followed by an admission (visits with an admission go with it)."""
    fall_rate_ratio: float = 0.9
    """Care managers arrange falls assessments and home adaptations: falls are no negative control."""
    zarit_points_at_12_months: float = -8.0
    rupture_repair_time_ratio: float = 0.35
    carer_hours_per_week: float = -4.0
    return_to_work_odds_ratio: float = 6.0
    """A carer on unpaid leave back at work by 12 months: 20% without care management, 60% with it."""
    respite_rate_ratio: float = 4.0
    """Planned respite stays a year: 0.03 without care management, 0.12 with it."""
    benefit_application_odds_ratio: float = 6.0
    """A benefit applied for and granted after the index date: 10% without, 40% with care management."""
    interruption_detection_and_delivery: bool = True
    """Care managers hear of an interruption within days and get more of the granted hours delivered."""
    mortality_hazard_ratio: float = 1.0
    placement_hazard_ratio: float = 1.0

    @classmethod
    def none(cls) -> TrueEffects:
        """No effect on any outcome: the null worlds."""
        return cls(
            unplanned_admission_rate_ratio=1.0,
            emergency_visit_rate_ratio=1.0,
            fall_rate_ratio=1.0,
            zarit_points_at_12_months=0.0,
            rupture_repair_time_ratio=1.0,
            carer_hours_per_week=0.0,
            return_to_work_odds_ratio=1.0,
            respite_rate_ratio=1.0,
            benefit_application_odds_ratio=1.0,
            interruption_detection_and_delivery=False,
        )

    def validate(self) -> None:
        if self.mortality_hazard_ratio != 1.0 or self.placement_hazard_ratio != 1.0:
            raise ValueError(
                "mortality and placement hazard ratios must be 1: the generator keeps person-time the same under both "
                "potential outcomes"
            )
        thinned = ("unplanned_admission_rate_ratio", "emergency_visit_rate_ratio", "fall_rate_ratio")
        for name in (*thinned, "rupture_repair_time_ratio"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]: effects are drawn by thinning the untreated events")
        if not 0 < self.respite_rate_ratio <= RESPITE_MAX_RATIO:
            raise ValueError(f"respite_rate_ratio must be in (0, {RESPITE_MAX_RATIO:g}]")


def odds_shift(p: float, odds_ratio: float) -> float:
    """The probability whose odds are ``odds_ratio`` times those of ``p``."""
    odds = p / (1 - p) * odds_ratio
    return odds / (1 + odds)
