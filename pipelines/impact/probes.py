"""Probes of the headline design on generated null federations: where a small bias comes from, and what the
negative controls see. The figures of docs/validation.md ("A small positive bias", "What the negative
controls see") come from these; each probe writes one JSON line per federation.

* ``learners``: the cross-fitted doubly robust estimate of unplanned admissions with the study's learners
  (boosting, 3 folds as the first version had), with 5 folds, with 300 trees at half the learning rate,
  with the parametric regressions, and with the nuisances mixed; also the outcome model's plug-in and the
  weights' estimate alone, which show which nuisance carries the bias. In a null world the truth is 0.
* ``controls``: the main log rate ratio, each negative control's and their composite's, with the
  boosting and parametric learners, each control modelled on its own or as a share of the main
  outcome's rate (``proportional_outcome``).

* ``did_prior_use``: the DiD study as specified, with every prior-use window as a covariate, and with only the
  windows inside its washout (months 0-3), in a null world (docs/validation.md, "A crisis that goes on after
  enrolment").

``python -m pipelines.impact.probes learners baseline 100 130 out.jsonl``
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from pipelines import warehouse
from pipelines.impact.crossfit import (
    crossfit_outcome,
    crossfit_propensity,
    doubly_robust_att,
    proportional_outcome,
)
from pipelines.impact.dataset import admissions, outcome_key, study_dataset, study_population
from pipelines.impact.spec import StudySpec, load_studies
from pipelines.impact.study import treatment_and_covariates
from pipelines.impact.validation import DEFAULT_AGENCIES, DEFAULT_PERSONS, Job, load_federation

if TYPE_CHECKING:
    from pipelines.synthetic.federation import Federation

HEADLINE = "unplanned_hospitalisations"


def _null_federation(world: str, seed: int, persons: int) -> Federation:
    """The null twin of ``world`` for ``seed``, as the validation draws it."""
    from pipelines.synthetic.federation import FederationSpec, generate_federation
    from pipelines.synthetic.scenarios import Crisis

    job = Job.for_world(world, True, seed)
    return generate_federation(
        FederationSpec(
            agencies=DEFAULT_AGENCIES, persons=persons, seed=seed, scenario=job.scenario, null=True,
            crisis=Crisis.parse(job.crisis) if job.crisis else Crisis(),
        )
    )  # fmt: skip


def _null_population(world: str, seed: int, spec: StudySpec, persons: int) -> tuple[pl.DataFrame, Any]:
    federation = _null_federation(world, seed, persons)
    with tempfile.TemporaryDirectory() as folder, warehouse.connect(Path(folder) / "probe.duckdb") as con:
        load_federation(con, federation.tables)
        data, _ = study_population(spec, study_dataset(con, spec))
        history = admissions(con, data, 1)
    return data, history


def learners_probe(world: str, seed: int, persons: int = DEFAULT_PERSONS) -> dict[str, Any]:
    spec = next(s for s in load_studies() if s.name == HEADLINE)
    data, _ = _null_population(world, seed, spec, persons)
    t, x = treatment_and_covariates(spec, data)
    y = data["unplanned_admissions"].cast(pl.Float64).to_numpy()
    e = data["person_years"].to_numpy()
    three = replace(spec.learners.learners(spec.seed, 10_000), folds=3)
    variants = {
        "boosting_3_folds": three,
        "boosting_5_folds": replace(three, folds=5),
        "boosting_300_trees": replace(three, max_iter=300, learning_rate=0.05),
        "parametric": replace(three, learner="parametric"),
    }
    rule = spec.weights.rule()
    row: dict[str, Any] = {"world": world, "seed": seed}
    fitted = {}
    for name, learners in variants.items():
        nuisance = crossfit_propensity(t, x, learners)
        m0 = crossfit_outcome(y, e, t, x, nuisance, "poisson")
        effect = doubly_robust_att(y, e, t, nuisance.propensity, m0, rule, scale=1000.0)
        fitted[name] = (nuisance.propensity, m0)
        kept_t, kept_c = (t == 1) & (effect.weights > 0), (t == 0) & (effect.weights > 0)
        w = effect.weights
        row[name] = effect.estimate
        row[f"{name}_se"] = effect.standard_error
        row[f"{name}_plug_in"] = 1000 * float((y - e * m0)[kept_t].sum() / e[kept_t].sum())
        row[f"{name}_weights_only"] = 1000 * float(
            y[kept_t].sum() / e[kept_t].sum() - (w * y)[kept_c].sum() / (w * e)[kept_c].sum()
        )
    for ps_from, m_from in (("boosting_3_folds", "parametric"), ("parametric", "boosting_3_folds")):
        effect = doubly_robust_att(y, e, t, fitted[ps_from][0], fitted[m_from][1], rule, scale=1000.0)
        row[f"propensity_{ps_from}_outcome_{m_from}"] = effect.estimate
    return row


def controls_probe(world: str, seed: int, persons: int = DEFAULT_PERSONS) -> dict[str, Any]:
    spec = next(s for s in load_studies() if s.name == HEADLINE)
    data, history = _null_population(world, seed, spec, persons)
    t, x = treatment_and_covariates(spec, data)
    y = data["unplanned_admissions"].cast(pl.Float64).to_numpy()
    e = data["person_years"].to_numpy()
    controls = {c: history.after(outcome_key(c)) for c in spec.negative_controls}
    controls["composite"] = np.sum(list(controls.values()), axis=0)
    rule = spec.weights.rule()
    row: dict[str, Any] = {"world": world, "seed": seed}
    base = replace(spec.learners.learners(spec.seed, 10_000), folds=3)  # as measured: the first version's folds
    for name, learners in (("boosting", base), ("parametric", replace(base, learner="parametric"))):
        nuisance = crossfit_propensity(t, x, learners)
        m0 = crossfit_outcome(y, e, t, x, nuisance, "poisson")
        main = doubly_robust_att(y, e, t, nuisance.propensity, m0, rule, scale=1000.0)
        row[f"{name}_main"] = [main.log_ratio, main.log_ratio_se]
        for control, total in controls.items():
            own = crossfit_outcome(total, e, t, x, nuisance, "poisson")
            found = doubly_robust_att(total, e, t, nuisance.propensity, own, rule, scale=1000.0)
            row[f"{name}_{control}"] = [found.log_ratio, found.log_ratio_se]
            share = proportional_outcome(total, e, t, m0, nuisance.fold)
            found = doubly_robust_att(total, e, t, nuisance.propensity, share, rule, scale=1000.0)
            row[f"{name}_share_{control}"] = [found.log_ratio, found.log_ratio_se]
    return row


def did_prior_use_probe(world: str, seed: int, persons: int = DEFAULT_PERSONS) -> dict[str, Any]:
    """The DiD study as specified, and the same with the headline study's prior-use windows as covariates (all, or
    those inside the washout only): the
    months just before enrolment (left out of the baseline rate by the washout) are what shows a referral
    crisis, and a crisis that goes on after enrolment confounds the change unless the design conditions on it."""
    from pipelines.impact.study import run_study

    specs = {s.name: s for s in load_studies()}
    did = specs["hospitalisations_did"].model_copy(update={"subgroups": []})
    windows = [c for c in specs[HEADLINE].covariates if c not in did.covariates]
    # Inside the washout (months 0-3): windows that neither the baseline rate nor the placebo nor the dip check
    # (months 5-7) look at, so that conditioning on them leaves those checks their meaning.
    washout = [c for c in windows if c.endswith(("_0_1m", "_1_3m"))]
    variants = {
        "as_specified": did,
        "prior_use": did.model_copy(update={"covariates": [*did.covariates, *windows]}),
        "washout_use": did.model_copy(update={"covariates": [*did.covariates, *washout]}),
    }
    federation = _null_federation(world, seed, persons)
    row: dict[str, Any] = {"world": world, "seed": seed}
    with tempfile.TemporaryDirectory() as folder, warehouse.connect(Path(folder) / "probe.duckdb") as con:
        load_federation(con, federation.tables)
        for name, spec in variants.items():
            result = run_study(con, spec, descriptive=False)
            main = result.main
            numbers = result.verdict.numbers
            row[name] = {
                "uncalibrated": [main.estimate, main.ci_low, main.ci_high] if main else None,
                "log_ratio": [main.log_ratio, main.log_ratio_se] if main else None,
                "published": [numbers.get("estimate"), numbers.get("ci_low"), numbers.get("ci_high")],
                "composite": (result.calibration or {}).get("systematic_error", {}).get("mean"),
                "publishable": result.verdict.publishable,
                "failed": [c.name for c in result.verdict.failed],
            }
    return row


PROBES = {"learners": learners_probe, "controls": controls_probe, "did_prior_use": did_prior_use_probe}


def main(argv: list[str] | None = None) -> int:
    probe, world, first, stop, out = (argv if argv is not None else sys.argv[1:])[:5]
    with Path(out).open("a", encoding="utf-8") as sink:
        for seed in range(int(first), int(stop)):
            sink.write(json.dumps(PROBES[probe](world, seed)) + "\n")
            sink.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
