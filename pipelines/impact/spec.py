"""A study's specification: the versioned YAML file in ``data/studies/``, validated when definitions load.

Everything that shapes an estimate is fixed here before any outcome is seen: the population,
the covariates (from a fixed catalogue, never SQL from a file), the design and its nuisance
learners (folds, trees, seed), the trimming of weights, the pre-period and washout of a
difference-in-differences, the negative controls with the reason each cannot be changed by
care management, and the gate's thresholds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipelines.contract import allowed_values, load_contract
from pipelines.impact.crossfit import Learners
from pipelines.impact.did import Windows
from pipelines.impact.weights import WeightRule
from pipelines.publication.rules import MIN_CELL
from pipelines.settings import project_root

MONTH_DAYS = 365.25 / 12

PRIOR_USE_EVENTS = ("unplanned_admissions", "emergency_visits", "falls")
"""Events whose counts before the index date describe prior use: unplanned admissions (not planned
stays), emergency visits (followed by an admission or not) and recorded falls."""
PRIOR_USE_WINDOWS: dict[str, tuple[int, int]] = {
    "0_1m": (0, 1),
    "1_3m": (1, 3),
    "3_6m": (3, 6),
    "6_12m": (6, 12),
    "12_24m": (12, 24),
}
"""Months before the index date, (after, up to]: the windows prior use is counted in.

Why several windows, fixed here: people are referred after a crisis (a discharge, a fall, a carer's
exhaustion) whose length and timing no study can know in advance, and a lasting frailty shows as
use spread over years. Counts in short windows near the index date and longer ones further back let
the flexible learners separate a recent crisis (which passes) from lasting frailty (which does not),
whatever the crisis window of a federation is; a single "recent" window of a set length (the 4
months of an earlier version) suited one referral process only."""


def _day_range(months: tuple[int, int]) -> tuple[int, int]:
    """Days before the index date (first, last) of a window of months (after, up to]."""
    return round(months[0] * MONTH_DAYS) + 1, round(months[1] * MONTH_DAYS)


PRIOR_USE_COUNTS: dict[str, tuple[str, int, int]] = {
    **{
        f"{event}_{window}": (event, *_day_range(months))
        for event in PRIOR_USE_EVENTS
        for window, months in PRIOR_USE_WINDOWS.items()
    },
    "prior_unplanned_admissions": ("unplanned_admissions", *_day_range((0, 12))),
    "prior_emergency_visits": ("emergency_visits", *_day_range((0, 12))),
}
"""Prior-use covariates: name -> (event, first day, last day before the index date), counted in
``fct_prior_use`` (a SQL model) over the person's events at every agency (``int_events``). ``prior_*``: the 12 months
before, in one count."""

COVARIATES = {
    "age": "age_at_start",
    "disabled": "case when age_at_start < 60 then 1 else 0 end",
    "gir_1_2": "case when gir_band = 'GIR 1-2' then 1 else 0 end",
    "gir_3_4": "case when gir_band = 'GIR 3-4' then 1 else 0 end",
    "lives_alone": "case when lives_alone then 1 else 0 end",
    "heart_failure": "case when main_conditions like '%heart_failure%' then 1 else 0 end",
    "copd": "case when main_conditions like '%copd%' then 1 else 0 end",
    "dementia": "case when main_conditions like '%dementia%' then 1 else 0 end",
    "diabetes": "case when main_conditions like '%diabetes%' then 1 else 0 end",
    "frailty": "case when main_conditions like '%frailty%' then 1 else 0 end",
    "brain_injury": "case when main_conditions like '%brain_injury%' then 1 else 0 end",
    **{name: name for name in PRIOR_USE_COUNTS},
    "entry_after_hospital": "case when entry_situation in ('hospital_discharge', 'crisis') then 1 else 0 end",
    "zarit_baseline": "zarit_baseline",
}
"""Covariates a study may name, each a SQL expression over the study base (fixed here, never from a file);
prior-use counts are columns of the study base (``PRIOR_USE_COUNTS``)."""

COUNT_TYPE = "smallint"
"""The SQL type of a prior-use count in a study's dataset: 16 bits (a count of one person's events in two years
up to 32,767), not the engine's 64-bit ``count``. Exact or an error: DuckDB and Spark (ANSI mode) refuse a value
out of range rather than wrap it."""
FLAG_TYPE = "tinyint"
COVARIATE_TYPES = {
    "age": COUNT_TYPE,
    **{name: FLAG_TYPE for name, sql in COVARIATES.items() if sql.endswith("then 1 else 0 end")},
    **dict.fromkeys(PRIOR_USE_COUNTS, COUNT_TYPE),
}
"""The SQL type each integer covariate is cast to in a study's dataset (a flag 8 bits, an age or a count 16);
the others (``zarit_baseline``, a score read as a real number) keep theirs. Every estimator reads covariates
as 64-bit floats (``study.treatment_and_covariates``), which hold each of these integers exactly: the same
values, in a quarter to an eighth of the memory of 64-bit columns (``docs/benchmarks-notes.md``)."""


def history_months_for(covariates: list[str]) -> int:
    """Months of history the prior-use covariates need in the data (0 when none is named)."""
    days = [PRIOR_USE_COUNTS[c][2] for c in covariates if c in PRIOR_USE_COUNTS]
    return math.ceil(max(days) / MONTH_DAYS - 1e-9) if days else 0


@dataclass(frozen=True)
class RatioOutcome:
    numerator: str
    exposure: str
    scale: float
    unit: str


RATIO_OUTCOMES = {
    "unplanned_admissions": RatioOutcome("unplanned_admissions", "person_years", 1000.0, "per 1,000 person-years"),
    "rupture_repair_days": RatioOutcome(
        "rupture_days_without_help", "ruptures_observed", 1.0, "days without help per service interruption"
    ),
}
MEAN_OUTCOMES = {"zarit_change_12m": "Zarit points"}
ADMISSION_CONTROL_PREFIX = "admissions_"
"""Negative-control outcomes are unplanned admissions of one diagnosis group: ``admissions_<group>``."""
PER_PERSON_YEARS = RatioOutcome("", "person_years", 1000.0, "per 1,000 person-years")

SUBGROUP_DIMENSIONS = ("gir_band", "age_band", "agency_model")


def diagnosis_groups() -> tuple[str, ...]:
    """The contract's diagnosis groups of admissions (negative controls are named after them)."""
    return allowed_values(load_contract().entity("events").field("diagnosis_group")) or ()


def control_group(outcome: str) -> str:
    return outcome.removeprefix(ADMISSION_CONTROL_PREFIX)


class Population(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_age: int = 0
    max_age: int = 130
    agency_models: list[Literal["remote", "proximity", "integrated"]] | None = None


class Thresholds(BaseModel):
    """The gate's thresholds (``gate.py``; why each, in docs/impact-studies.md)."""

    model_config = ConfigDict(extra="forbid")

    max_abs_smd: float = 0.1
    variance_ratio: tuple[float, float] = (0.5, 2.0)
    min_treated: int = MIN_CELL
    min_comparison: int = MIN_CELL
    """Episodes each arm needs. A study file may ask for more, never fewer than ``MIN_CELL`` (``StudySpec``
    refuses it): a release on fewer people is refused anyway, after the whole study has run."""
    equipoise_share: float | None = None
    min_effective_sample_size: float = 30.0
    """Kish effective sample size each arm must keep after weighting."""
    max_ease: float = 0.25
    """Expected absolute systematic error (log rate-ratio scale) the negative controls may show."""
    ease_when_detectable: bool = True
    """Judge EASE only when the negative controls can detect a systematic error of ``max_ease`` (2.8 times
    the composite control's standard error at most ``max_ease``); else report it, unjudged. False: always
    judge it (OHDSI's rule, made for dozens of common controls)."""


class CalibrationSettings(BaseModel):
    """How the negative controls calibrate the interval (``calibration.py``), beyond Schuemie's defaults."""

    model_config = ConfigDict(extra="forbid")

    spread_prior_scale: float = Field(gt=0, le=1, allow_inf_nan=False, strict=True)
    """Scale of a half-normal prior on the spread of the systematic error (log rate-ratio scale): the calibrated
    interval is widened by the spread's posterior root mean square instead of its maximum-likelihood value,
    which rare controls put at exactly 0 in two federations of three. Why 0.1 in the admission studies:
    docs/impact-studies.md ("The spread under a prior"). At most 1 (a typical systematic error of a factor e
    is no prior for a calibration, and the posterior's integration is sized for scales up to it)."""


class LearnerSettings(BaseModel):
    """Nuisance learners of the cross-fitted designs (``dml``, ``did``)."""

    model_config = ConfigDict(extra="forbid")

    learner: Literal["boosting", "parametric"] = "boosting"
    folds: int = Field(default=5, ge=2, le=20)
    max_iter: int = Field(default=100, ge=10)
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    max_leaf_nodes: int = Field(default=8, ge=2)
    min_samples_leaf: int = Field(default=20, ge=1)
    l2_regularization: float = Field(default=1.0, ge=0)
    parametric_below: int | None = 500
    """When the smaller arm has fewer episodes than this, the parametric learners are used instead:
    boosting needs hundreds of episodes per fold to beat a regression. Decided on arm sizes, before
    any outcome is seen."""

    def learners(self, seed: int, smaller_arm: int) -> Learners:
        small = self.parametric_below is not None and smaller_arm < self.parametric_below
        return Learners(
            learner="parametric" if small else self.learner,
            folds=self.folds,
            seed=seed,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
        )


class WeightSettings(BaseModel):
    """Trimming and truncation of ATT weights (``weights.py``)."""

    model_config = ConfigDict(extra="forbid")

    max_propensity: float | None = Field(default=None, gt=0.5, lt=1)
    truncate_quantile: float | None = Field(default=None, gt=0.5, lt=1)

    def rule(self) -> WeightRule:
        return WeightRule(self.max_propensity, self.truncate_quantile)


class Costs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    care_management_months: Literal["follow_up"] = "follow_up"


Design = Literal["match", "ipw", "overlap", "aipw", "dml", "did"]


class StudySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    question: str
    order: int = 100
    """Where the study stands in lists (lowest first: the headline study)."""
    population: Population = Field(default_factory=Population)
    treated_cohort: Literal["care_managed"] = "care_managed"
    comparison_cohort: Literal["comparison"] = "comparison"
    follow_up_days: int = Field(default=365, ge=30)
    outcome: Literal["unplanned_admissions", "rupture_repair_days", "zarit_change_12m"]
    negative_controls: dict[str, str] = Field(default_factory=dict)
    """Outcome -> the reason care management cannot change it (``admissions_<diagnosis group>``)."""
    covariates: list[str]
    design: Design = "ipw"
    learners: LearnerSettings = Field(default_factory=LearnerSettings)
    weights: WeightSettings = Field(default_factory=WeightSettings)
    did_level: Literal["person", "agency"] = "person"
    """For ``did``: an interval over people, or clustered by agency."""
    pre_period_months: int = Field(default=12, ge=6, le=60)
    """For ``did``: months before the index date the baseline rate may use."""
    washout_months: int = Field(default=0, ge=0, le=12)
    """For ``did``: the last months before the index date left out of the baseline (the referral crisis)."""
    estimand: Literal["att", "ate"] = "att"
    bootstrap: int = Field(default=1000, ge=50)
    seed: int = 0
    subgroups: list[Literal["gir_band", "age_band", "agency_model"]] = Field(default_factory=list)
    """Breakdowns estimated one level at a time, for the forest plot (not for ``did``)."""
    subgroup_bootstrap: int = Field(default=200, ge=50)
    diagnostics: Thresholds = Field(default_factory=Thresholds)
    calibration: CalibrationSettings | None = None
    """Absent: the maximum-likelihood spread (every study version before issue 12's prior)."""
    costs: Costs | None = None

    def model_post_init(self, __context: Any) -> None:
        unknown = [c for c in self.covariates if c not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown covariates {unknown}; choose among {sorted(COVARIATES)}")
        for arm in ("min_treated", "min_comparison"):
            if getattr(self.diagnostics, arm) < MIN_CELL:
                raise ValueError(
                    f"diagnostics.{arm} is {getattr(self.diagnostics, arm)}: a study needs at least {MIN_CELL} "
                    f"episodes per arm (no figure on fewer than {MIN_CELL} people is ever released)"
                )
        if self.design == "did" and self.outcome != "unplanned_admissions":
            raise ValueError("difference-in-differences is available for unplanned_admissions only")
        if self.outcome in RATIO_OUTCOMES and self.design == "match":
            raise ValueError(f"{self.outcome} is a ratio outcome: use design ipw, overlap, aipw, dml or did, not match")
        if (self.outcome in RATIO_OUTCOMES or self.design in ("dml", "did")) and self.estimand != "att":
            raise ValueError(f"{self.outcome} with design {self.design}: estimand att (the treated) only")
        if self.design == "did":
            self.windows().validate()
            if self.subgroups:
                raise ValueError("subgroups are not estimated for difference-in-differences")
        if self.negative_controls and self.outcome != "unplanned_admissions":
            raise ValueError("negative controls calibrate admission rates: only unplanned_admissions studies name them")
        if self.calibration is not None and not self.negative_controls:
            raise ValueError("calibration settings need negative controls to calibrate with: name them, or remove it")
        groups = diagnosis_groups()
        for control, reason in self.negative_controls.items():
            if not control.startswith(ADMISSION_CONTROL_PREFIX) or control_group(control) not in groups:
                raise ValueError(
                    f"unknown negative control {control!r}: name it {ADMISSION_CONTROL_PREFIX}<group> with a "
                    f"diagnosis group of the contract ({', '.join(groups)})"
                )
            if len(reason.split()) < 5:
                raise ValueError(f"negative control {control}: write down why care management cannot change it")

    def windows(self) -> Windows:
        return Windows(self.pre_period_months, self.washout_months)

    @property
    def history_months(self) -> int:
        """Months of history before the index date each episode must have in the data: the pre-period of a
        difference-in-differences, and the longest window a prior-use covariate counts (24 months for counts
        12 to 24 months before), else none."""
        needed = history_months_for(self.covariates)
        return max(self.pre_period_months, needed) if self.design == "did" else needed


def studies_dir() -> Path:
    """``PARCOURS_STUDIES_DIR`` when set (a release's own copies, for ``parcours reproduce``), read when asked;
    else ``data/studies``. The folder holds the study files and their registration log."""
    chosen = os.environ.get("PARCOURS_STUDIES_DIR", "").strip()
    return Path(chosen).resolve() if chosen else project_root() / "data" / "studies"


SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader on libyaml's parser where PyYAML has it: the same constructors, so the same values
(``tests/test_registration.py`` compares both on every study file, their plan hashes with them), ten times
faster. A pipeline run reads each study file five times (the registration check finds a study's file among
all of them, then hashes it): 0.12 s of the studies stage with the pure-Python parser."""


def read_yaml(text: str) -> Any:
    """A study file's content as ``yaml.safe_load`` reads it, parsed faster (``SAFE_LOADER``)."""
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506  (SafeLoader or CSafeLoader)


def load_study(path: Path) -> StudySpec:
    return StudySpec.model_validate(read_yaml(path.read_text(encoding="utf-8")))


def load_studies(folder: Path | None = None) -> list[StudySpec]:
    specs = [load_study(p) for p in sorted((folder or studies_dir()).glob("*.yaml"))]
    return sorted(specs, key=lambda s: (s.order, s.name))
