"""The studies' figures on fixed seeds do not change by accident, and the speed work changed none.

A snapshot (``tests/snapshots/study_figures.json``) keeps every figure a study writes: each row's
estimate, interval and calibrated interval, its verdict, and the cumulative-incidence curves with their
bands, for the demo's federation (3,000 persons, every study with its subgroups and curves) and, under
``make validate``, for two federations of the validation (the study path it runs). It was written by the
code before the studies stage was made faster (commit 7c8faa8) and checked against the code after it,
to six significant figures (the pages print at most four). After an intended change of a figure, rerun
with ``PARCOURS_UPDATE_SNAPSHOTS=1`` and say why in the commit.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pipelines import warehouse
from pipelines.impact.study import curve_rows, load_studies, result_rows, run_study
from pipelines.impact.validation import Job, load_federation, validation_spec
from pipelines.synthetic.federation import FederationSpec, generate_federation
from pipelines.synthetic.scenarios import Crisis

SNAPSHOT = Path(__file__).parent / "snapshots" / "study_figures.json"
FIGURES = ["estimate", "ci_low", "ci_high", "estimate_calibrated", "ci_low_calibrated", "ci_high_calibrated"]
DEMO = FederationSpec(agencies=12, persons=3000, seed=2026)
"""The demo's federation (``parcours generate`` with its defaults), loaded as validation loads one."""
VALIDATION_JOBS = [Job.for_world("crisis_short", True, 2), Job.for_world("hidden_frailty", False, 3)]


def _rounded(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.6g}")
    return value


def study_figures(spec: FederationSpec, descriptive: bool, studies: tuple[str, ...] | None = None) -> dict[str, Any]:
    federation = generate_federation(spec)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, warehouse.connect(Path(folder) / "figures.duckdb") as con:
        load_federation(con, federation.tables)
        for study in load_studies():
            if studies is not None and study.name not in studies:
                continue
            result = run_study(con, study if descriptive else validation_spec(study), descriptive)
            rows = result_rows(result)
            out[study.name] = {
                "verdict": [result.verdict.kind, result.publishable, sorted(result.failing)],
                "rows": [
                    {
                        "row": f"{r['role']}:{r['outcome']}:{r['dimension']}={r['dimension_value']}",
                        "publishable": r["publishable"],
                        **{f: _rounded(r[f]) for f in FIGURES},
                    }
                    for r in rows.iter_rows(named=True)
                ],
                "curves": [
                    [r["curve"], r["day"], *(_rounded(r[c]) for c in ("cumulative_incidence", "ci_low", "ci_high"))]
                    for r in curve_rows(result).iter_rows(named=True)
                ],
            }
    return out


def _check(key: str, figures: dict[str, Any]) -> None:
    snapshot = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
    if os.environ.get("PARCOURS_UPDATE_SNAPSHOTS"):
        snapshot[key] = figures
        SNAPSHOT.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    expected = snapshot[key]
    assert figures.keys() == expected.keys()
    for name, study in figures.items():
        assert study["verdict"] == expected[name]["verdict"], name
        assert [r["row"] for r in study["rows"]] == [r["row"] for r in expected[name]["rows"]], name
        for got, want in zip(study["rows"], expected[name]["rows"], strict=True):
            assert got["publishable"] == want["publishable"], (name, got["row"])
            assert _numbers(got, FIGURES) == _close(_numbers(want, FIGURES)), (name, got["row"])
        got_curves, want_curves = study["curves"], expected[name]["curves"]
        assert [c[:2] for c in got_curves] == [c[:2] for c in want_curves], name
        assert [_numbers(c[2:]) for c in got_curves] == [_close(_numbers(c[2:])) for c in want_curves], name


def _numbers(values: Any, keys: list[str] | None = None) -> list[float]:
    """Figures as floats, a missing one as NaN (so that missing must stay missing)."""
    picked = [values[k] for k in keys] if keys is not None else list(values)
    return [math.nan if v is None else float(v) for v in picked]


def _close(values: list[float]) -> Any:
    return pytest.approx(values, rel=2e-6, abs=1e-9, nan_ok=True)


def test_the_demo_federations_study_figures_equal_their_snapshot() -> None:
    _check("demo", study_figures(DEMO, descriptive=True))


@pytest.mark.slow
@pytest.mark.parametrize("job", VALIDATION_JOBS, ids=lambda j: f"{j.world}-{'null' if j.null else 'effect'}-{j.seed}")
def test_validation_federations_study_figures_equal_their_snapshot(job: Job) -> None:
    spec = FederationSpec(
        agencies=job.agencies, persons=job.persons, seed=job.seed, scenario=job.scenario, null=job.null,
        crisis=Crisis.parse(job.crisis) if job.crisis else Crisis(),
    )  # fmt: skip
    figures = study_figures(spec, descriptive=False, studies=job.studies)
    _check(f"{job.world}-{'null' if job.null else 'effect'}-{job.seed}", figures)
