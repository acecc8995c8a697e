"""The release precision policy and the auditor's integer search (red-team findings F1 to F3).

Full-precision SMDs of binary covariates beside perturbed arms gave back every covariate's carriers in each arm
and the arms' true sizes; a full-precision mean of a whole-number score times the arm gave the exact sum of
scores. Released estimates are now written to declared units (``precision.py``), and the auditor runs the
red team's search (``tallies.py``) on every release.
"""

from __future__ import annotations

import inspect
import itertools
import json
from datetime import date

import numpy as np
import polars as pl
import pytest

from dashboards import data_access
from dashboards.reports import study_csv_rows, study_report_html
from dashboards.study_content import study_content
from pipelines import warehouse
from pipelines.impact.gate import Verdict
from pipelines.presentation.catalogue import t
from pipelines.presentation.formats import day
from pipelines.publication import tallies
from pipelines.publication.agency_tables import case_mix_table
from pipelines.publication.cell_key import protect_count
from pipelines.publication.precision import (
    RELEASE_PRECISION,
    is_rounded,
    precision_problems,
    round_to,
    round_verdict,
    undeclared,
    verdict_precision_problems,
)
from pipelines.publication.protector import Protector
from pipelines.publication.release import (
    AGENCY_SCHEMAS,
    FUNDER_SCHEMAS,
    RELEASE_INPUTS,
    agency_dir,
    build_publication,
    funder_path,
    protected,
    released_cutoff,
)
from pipelines.publication.rules import MAX_NOISE
from pipelines.publication.study_tables import (
    STUDIES,
    STUDIES_SCHEMA,
    published_effect,
    published_headline,
    studies_tables,
)
from pipelines.publication.tallies import NARROW, arm_box, binary_smd, smd_attack, smd_solutions, tally_problems
from tests.conftest import PipelineRun
from tests.test_disclosure import CURVE_SCHEMA, _admissions_mart, _study_mart, _study_release

SECRET = b"test secret for the release precision policy"


def test_values_are_written_to_their_unit_exactly() -> None:
    assert round_to(-9.043415628171392, 0.1) == -9.0
    assert round_to(0.15743376286006697, 0.01) == 0.16
    assert round_to(-383812.6420203709, 1000.0) == -384000.0
    assert round_to(0.25, 0.1) == 0.2  # half to even, on the decimal grid (no 0.30000000000000004)
    assert round_to(0.35, 0.1) == 0.4
    assert round_to(6, 0.01) == 6
    assert isinstance(round_to(6, 0.01), int)
    assert round_to([0.123, None, 1.987], 0.01) == [0.12, None, 1.99]
    nested = {"net_savings": -106308.86, "cost_per_stay": 1204.0, "probability_net_savings_positive": 0.2399}
    assert round_to(nested, {"net_savings": 1000.0, "cost_per_stay": 1.0, "*": 0.01}) == {
        "net_savings": -106000.0,
        "cost_per_stay": 1204.0,
        "probability_net_savings_positive": 0.24,
    }
    scenarios = {"low": {"net_savings": -106308.86, "net_savings_ci": [-401174.1, 188556.4], "cost_per_stay": 1204.0}}
    assert round_to(scenarios, {"net_savings": 1000.0, "net_savings_ci": 1000.0, "cost_per_stay": 1.0}) == {
        "low": {"net_savings": -106000.0, "net_savings_ci": [-401000.0, 189000.0], "cost_per_stay": 1204.0}
    }
    assert not is_rounded(scenarios, {"net_savings": 1000.0, "net_savings_ci": 1000.0, "cost_per_stay": 1.0})
    assert is_rounded(0.16, 0.01)
    assert not is_rounded(0.157, 0.01)


def test_every_guarded_value_released_to_funders_or_agencies_has_a_declared_precision() -> None:
    for schema in (*FUNDER_SCHEMAS.values(), *AGENCY_SCHEMAS.values()):
        assert undeclared(schema) == [], schema.name
    declared = set(RELEASE_PRECISION[STUDIES])
    assert {"diagnostics.smd_before", "treated_value", "estimate", "counterfactual_value"} <= declared
    assert "counterfactual_value" in STUDIES_SCHEMA.derived  # recomputed from the rounded values


def test_a_verdict_is_released_with_its_estimates_rounded_and_its_decision_kept() -> None:
    verdict = {
        "publishable": True,
        "kind": "effect_detected",
        "checks": [
            {"name": "treated_episodes", "value": 628, "threshold": 11, "passed": True, "detail": {}},
            {
                "name": "balance_max_abs_smd",
                "value": 0.023065218915082956,
                "threshold": 0.1,
                "passed": True,
                "detail": {"covariate": "gir_3_4"},
            },
        ],
        "numbers": {
            "unit": "Zarit points",
            "estimate": -9.043415628171392,
            "ci_low": -9.94702465928949,
            "calibrated": False,
            "minimum_detectable_effect": 1.275565563597427,
            "not_shown": ["x"],
            "uncalibrated": {"estimate": -96.60124402224656},
        },
    }
    text = json.dumps(verdict)
    assert verdict_precision_problems(text)  # full precision is refused
    released = json.loads(round_verdict(text))
    assert verdict_precision_problems(json.dumps(released)) == []
    assert released["numbers"]["estimate"] == -9.0
    assert released["numbers"]["ci_low"] == -9.9
    assert released["numbers"]["uncalibrated"] == {"estimate": -96.6}
    assert released["checks"][0]["value"] == 628
    assert released["checks"][1]["value"] == 0.02
    assert [(c["name"], c["passed"], c["threshold"]) for c in released["checks"]] == [
        ("treated_episodes", True, 11),
        ("balance_max_abs_smd", True, 0.1),
    ]


def test_the_bisection_finds_exactly_the_integer_solutions_a_brute_force_finds() -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        n1, n0 = int(rng.integers(11, 40)), int(rng.integers(11, 40))
        k1, k0 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n0 + 1))
        value = float(binary_smd(np.array(k1), n1, np.array(k0), n0))
        for unit in (None, 0.01, 0.05):
            shown = value if unit is None else round_to(value, unit)
            found, first, last, corners = smd_solutions(shown, unit, np.array([[n1]]), np.array([[n0]]))
            fast = {(a, b) for a in range(n1 + 1) if found[0, a] for b in range(first[0, a], last[0, a] + 1)}
            fast |= {corner for corner, hit in zip(((0, n0), (n1, 0)), corners[0], strict=True) if hit}
            half = 1e-12 * max(1, abs(shown)) if unit is None else unit / 2 + 1e-9
            brute = {
                (a, b)
                for a, b in itertools.product(range(n1 + 1), range(n0 + 1))
                if abs(float(binary_smd(np.array(a), n1, np.array(b), n0)) - shown) <= half
            }
            assert fast == brute
            assert (k1, k0) in fast


def _full_search(
    smds: list[float], unit: float | None, first_arm: int, second_arm: int
) -> tuple[set[tuple[int, int]], list[tuple[int, int]]]:
    """The search as first written (every carrier count of the first arm for every arm pair): the oracle."""
    pairs = [(a, b) for a in arm_box(first_arm) for b in arm_box(second_arm)]
    n1, n0 = np.array([a for a, _ in pairs])[:, None], np.array([b for _, b in pairs])[:, None]
    solved, alive = [], np.ones(len(pairs), dtype=bool)
    for value in smds:
        found, first, last, corners = smd_solutions(value, unit, n1, n0)
        if found.any() or corners.any():
            solved.append((found, first, last, corners))
            alive &= found.any(axis=1) | corners.any(axis=1)
    carriers = []
    for found, first, last, corners in solved:
        kept = found & alive[:, None]
        k1s = set(np.flatnonzero(kept.any(axis=0)).tolist())
        k0s = {k0 for lo, hi in zip(first[kept], last[kept], strict=True) for k0 in range(lo, hi + 1)}
        for (a, b), (none_first, all_first) in zip(pairs, corners & alive[:, None], strict=True):
            k1s |= {0} if none_first else set()
            k0s |= {b} if none_first else set()
            k1s |= {a} if all_first else set()
            k0s |= {0} if all_first else set()
        carriers.append((len(k1s), len(k0s)))
    return {p for p, keep in zip(pairs, alive, strict=True) if keep}, carriers


@pytest.mark.parametrize("block", [1, 3, 16, tallies.SCAN_COLUMNS])
def test_the_search_that_stops_early_decides_what_the_full_search_decides(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arms of 11 to 400, rare and common covariates, SMDs exact or rounded: the same surviving arm pairs, and
    every carrier count the full search finds under NARROW values found exactly (above it, at least NARROW)."""
    monkeypatch.setattr(tallies, "SCAN_COLUMNS", block)
    rng = np.random.default_rng(11)
    stopped_early = 0
    for _ in range(25):
        arms = int(rng.integers(11, 400)), int(rng.integers(11, 400))
        carriers = [(int(rng.integers(0, arms[0] // f + 1)), int(rng.integers(0, arms[1] // f + 1))) for f in (1, 30)]
        carriers.append((0, int(rng.integers(0, 3))))  # all but absent in one arm
        exact = [float(binary_smd(np.array(k1), arms[0], np.array(k0), arms[1])) for k1, k0 in carriers]
        for unit in (None, 0.01, 0.05):
            smds = exact if unit is None else [round_to(v, unit) for v in exact]
            released = arms[0] + int(rng.integers(-MAX_NOISE, MAX_NOISE + 1)), arms[1]
            survivors, counts = tallies._smd_search(smds, unit, *released)
            full_survivors, full_counts = _full_search(smds, unit, *released)
            assert survivors == full_survivors
            assert [(min(a, NARROW), min(b, NARROW)) for a, b in counts] == [
                (min(a, NARROW), min(b, NARROW)) for a, b in full_counts
            ]
            stopped_early += sum(a < b for (a, _), (b, _) in zip(counts, full_counts, strict=True))
    assert stopped_early > 0 or block == tallies.SCAN_COLUMNS  # the early stop is exercised


def test_a_full_precision_smd_pins_the_carriers_and_the_arms_and_a_rounded_one_does_not() -> None:
    """The red team's case in small: 9 of 588 comparison persons carry a rare diagnosis, 40 of 2,245 treated;
    the arms were released perturbed (2,247 and 586)."""
    arms, released = (2245, 588), (2247, 586)
    carriers = [(40, 9), (300, 61), (1001, 240), (170, 50)]
    smds = [float(binary_smd(np.array(k1), arms[0], np.array(k0), arms[1])) for k1, k0 in carriers]
    narrowed, survivors = smd_attack(smds, None, *released)
    assert survivors == {arms}  # the perturbation is undone
    assert {n.what for n in narrowed} >= {"the treated arm's size", "the comparison arm's size"}
    assert any("comparison arm" in n.what and n.values == 1 for n in narrowed if "carriers" in n.what)
    narrowed, survivors = smd_attack([round_to(v, 0.01) for v in smds], 0.01, *released)
    assert narrowed == []
    assert len(survivors) == 49


def _marts(run: PipelineRun) -> dict[str, pl.DataFrame]:
    with warehouse.connect(run.settings.warehouse_path, read_only=True) as con:
        return {t: warehouse.query(con, f"select * from {t}") for t in RELEASE_INPUTS}


def test_the_auditor_refuses_full_precision_estimates_and_passes_the_rounded_release(small_run: PipelineRun) -> None:
    """What main released before (the analysts' estimates beside the funders' perturbed arms) is refused by the
    integer search; the release as now written passes it, every declared value written to its unit."""
    marts = _marts(small_run)
    publication = build_publication(marts, SECRET)
    funders = publication.funders.tables[STUDIES]
    main = funders.filter(pl.col("role") == "main")
    assert main.height > 0  # the carer-burden study is published
    assert tally_problems(STUDIES, funders) == []
    assert precision_problems(STUDIES, funders, STUDIES_SCHEMA) == []
    for row in main.iter_rows(named=True):
        assert all(is_rounded(v, 0.01) for v in json.loads(row["diagnostics"])["smd_before"])
        mde = json.loads(row["diagnostics"]).get("minimum_detectable_effect")  # red-team T5: one MDE per row
        assert mde == Verdict.from_json(row["verdict"]).numbers.get("minimum_detectable_effect")
        if row["treated_value"] is not None and row["estimate"] is not None:
            assert row["treated_value"] - row["counterfactual_value"] == pytest.approx(row["estimate"], abs=1e-9)
    truth = (
        publication.analysts[STUDIES].filter(pl.col("role") == "main").select("study", "diagnostics", "treated_value")
    )
    before = main.drop("diagnostics", "treated_value").join(truth, on="study")  # main's release: full precision
    problems = tally_problems(STUDIES, before)
    assert any("carriers of a binary covariate" in p for p in problems)
    assert any("arm's size" in p for p in problems)
    assert precision_problems(STUDIES, before, STUDIES_SCHEMA)
    assert all(str(NARROW) in p for p in problems)


def _figure_number(text: str) -> float:
    """The first number of a figure as the page prints it in French (−158,2 …; 1 234,5 …)."""
    token = text.replace("\u202f", "").replace("\xa0", "").replace("−", "-").split(" ")[0]
    return float(token.replace(",", "."))


def test_observed_minus_counterfactual_is_the_published_effect_on_the_page_and_in_its_exports() -> None:
    """Red-team T1: the page showed an observed 342.2 and a counterfactual 438.8 (a gap of 96.6, the uncalibrated
        estimate) under a headline effect of -158.2 (calibrated). The counterfactual is now the observed value minus
        the published effect, for funders and analysts alike, in the release, the page and the HTML report (the CSV
    carries the published effect beside the row's own estimate, and no counterfactual)."""
    mart = _admissions_mart(treated_years=50.0)  # published, calibrated: -80 uncalibrated, about -122 calibrated
    release, report = protected(lambda forced: _study_release(mart, forced))
    assert report.problems == []
    rows = release.tables[STUDIES]
    main = rows.filter(pl.col("role") == "main").row(0, named=True)
    verdict = Verdict.from_json(main["verdict"])
    assert verdict.numbers["calibrated"]
    published = verdict.numbers["estimate"]
    assert published != pytest.approx(main["estimate"], abs=1.0)  # the uncalibrated estimate differs
    assert main["treated_value"] - main["counterfactual_value"] == pytest.approx(published, abs=1e-9)
    assert published_effect(main) == published
    truth = studies_tables(mart, pl.DataFrame(schema=CURVE_SCHEMA), Protector("analysts", None))[STUDIES]
    analyst = truth.filter(pl.col("role") == "main").row(0, named=True)
    assert analyst["treated_value"] - analyst["counterfactual_value"] == pytest.approx(
        Verdict.from_json(analyst["verdict"]).numbers["estimate"]
    )
    content = study_content(rows, {}, {"published_at": "2026-11-30T10:00:00+00:00"}, "fr")
    effect, observed, counterfactual = (_figure_number(f.value) for f in content.effect[:3])
    assert observed - counterfactual == pytest.approx(effect, abs=0.051)  # as printed, to 0.1
    html = study_report_html(content, {}, "fr")
    assert content.effect[1].value in html
    assert content.effect[2].value in html
    csv = study_csv_rows(rows.filter(pl.col("role") == "main"), "fr")  # no counterfactual: the published effect
    assert csv[t("column.published_estimate", "fr")][0] == pytest.approx(published)


def test_the_history_shows_what_each_release_published_not_the_uncalibrated_estimate() -> None:
    """Red-team T2: the history showed a release's uncalibrated estimate and interval (-82.2, -175.6 to 11.2)
    where it had published its calibrated ones (-72.3, -403.4 to 114.6). It now reads each release's verdict."""
    mart = _admissions_mart(treated_years=50.0)
    release, _ = protected(lambda forced: _study_release(mart, forced))
    main = release.tables[STUDIES].filter(pl.col("role") == "main").row(0, named=True)
    numbers = Verdict.from_json(main["verdict"]).numbers
    history = published_headline(main)
    assert history == {"estimate": numbers["estimate"], "ci_low": numbers["ci_low"], "ci_high": numbers["ci_high"],
                       "calibrated": True}  # fmt: skip
    assert history["estimate"] == main["estimate_calibrated"]
    assert history["estimate"] != main["estimate"]
    assert inspect.getsource(data_access.headline_history).count("published_headline") == 1


def test_funders_and_agencies_are_told_the_cut_off_month_never_a_person_s_latest_date(small_run: PipelineRun) -> None:
    """Red-team F6: a cut-off derived from the data is one person's latest event date; funders and agencies get
    its month (a cut-off the analysts set, the quarter's end, is a parameter and stays a day)."""
    assert released_cutoff(None, date(2026, 6, 17)) == "2026-06"
    assert released_cutoff(date(2026, 6, 30), date(2026, 6, 30)) == "2026-06-30"
    assert day("2026-06", "fr") == "juin 2026"
    serving = small_run.settings.serving_path
    with warehouse.connect(serving, read_only=True) as con:
        exact = dict(con.execute("select key, value from serving_metadata").fetchall())["data_cutoff"]
    assert len(exact) == 10  # the analysts keep the date
    files = [funder_path(serving), *sorted(agency_dir(serving).glob("*.duckdb"))]
    assert len(files) > 1
    for path in files:
        with warehouse.connect(path, read_only=True) as con:
            shown = dict(con.execute("select key, value from serving_metadata").fetchall())["data_cutoff"]
        assert shown == exact[:7]


def test_attrition_steps_never_rise_once_perturbed_and_stay_within_the_noise() -> None:
    """Red-team T3: each attrition step had its own noise, so a step could show more episodes than the one
    before it. Steps are now lowered to the least shown before them, which keeps each within ±3 of its truth."""
    mart = _study_mart([120, 110, 90, 30])
    diagnostics = json.loads(mart["diagnostics"][0])
    steps = [1400, 1399, 1399, 1398, 1398, 1397, 1396, 1396, 1250]
    diagnostics["attrition"] = {f"step_{i}": n for i, n in enumerate(steps)}
    mart = mart.with_columns(pl.when(pl.col("role") == "main").then(pl.lit(json.dumps(diagnostics)))
                             .otherwise(pl.col("diagnostics")).alias("diagnostics"))  # fmt: skip
    for key in range(12):  # several secrets: independent noise made some step rise for most of them
        protector = Protector("funders", f"secret {key}".encode())
        shown = studies_tables(mart, pl.DataFrame(schema=CURVE_SCHEMA), protector)["release_study_attrition"]
        released = shown.sort("step_order")["episodes"].to_list()
        assert released == sorted(released, reverse=True)
        assert all(abs(r - t) <= MAX_NOISE for r, t in zip(released, steps, strict=True))
        cells = {c.id.row[1]: c.released for c in protector.ledger if c.id.table == "release_study_attrition"}
        assert [cells[f"step_{i}"] for i in range(len(steps))] == released  # what the auditor attacks


def test_an_agency_never_reads_more_persons_than_episodes_once_perturbed() -> None:
    """Red-team T4: persons and episodes had independent noise, so 50 persons in 50 episodes could read 52 in 49.
    A part of the episodes (persons, with a plan, GIR 1-2, living alone) is now never shown above them."""
    mart = pl.DataFrame({
        "dimension": ["agency"] * 2, "dimension_value": ["AG001"] * 2, "cohort": ["care_managed", "comparison"],
        "episodes": [50, 40],
        "persons": [50, 39], "episodes_with_plan": [50, 25], "share_gir_1_2": [1.0, 0.5],
        "share_living_alone": [0.98, 0.5], "days_to_first_contact_median": [3.0, 4.0],
        "days_to_plan_median": [10.0, 12.0], "age_mean": [81.3, 80.2],
    })  # fmt: skip
    rose = 0
    for key in range(16):
        protector = Protector("agency AG001", f"secret {key}".encode())
        table = case_mix_table(mart, "AG001", protector)
        for row in table.iter_rows(named=True):
            for part in ("persons", "episodes_with_plan", "gir_1_2_episodes", "living_alone_episodes"):
                if row[part] is not None:
                    assert row[part] <= row["episodes"]
        released = {(c.id.row, c.id.column): c.released for c in protector.ledger}
        for row in table.iter_rows(named=True):
            assert released[(("AG001", row["cohort"]), "persons")] == row["persons"]  # what the auditor attacks
        identity = ("case mix", "AG001", "care_managed")
        secret = f"secret {key}".encode()
        rose += (protect_count(secret, (*identity, "persons"), 50) or 0) > (
            protect_count(secret, (*identity, "episodes"), 50) or 0
        )
    assert rose > 0  # without the rule, some secrets' noise showed more persons than episodes


def test_two_studies_on_the_same_treated_arm_show_it_with_the_same_noise() -> None:
    """Red-team F4: the same true count (a treated arm used by two studies) was released with two independent
    noises, which an attacker averages. A whole study's arm is now keyed on the arm and its count."""
    one = _admissions_mart(treated_years=50.0)
    twin = one.with_columns(pl.lit("unplanned_twin").alias("study"), pl.lit(301, dtype=pl.Int64).alias("n_comparison"))
    for key in range(8):
        protector = Protector("funders", f"secret {key}".encode())
        rows = studies_tables(pl.concat([one, twin]), pl.DataFrame(schema=CURVE_SCHEMA), protector)[STUDIES]
        main = rows.filter(pl.col("role") == "main").sort("study")
        assert main["n_treated"].n_unique() == 1  # 600 in both: one noise
        assert main["n_treated"][0] is not None
