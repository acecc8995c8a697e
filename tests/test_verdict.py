"""One gate, one verdict: its decisions, its words in French and English, and every output that prints it."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dashboards.reports import csv_safe, study_csv_rows, study_report_html
from pipelines import warehouse
from pipelines.cli import main as cli
from pipelines.impact.gate import Check, Effect, Verdict, at_least, below, decide, interval_includes_zero
from pipelines.impact.messages import (
    CHECKS,
    MESSAGES,
    check_rows,
    day,
    effect_phrase,
    headline,
    money,
    number,
    render,
    status,
)
from tests.conftest import PipelineRun
from tests.test_dashboard import ANALYST, _app

EFFECT = Effect("unplanned_admissions", "per 1,000 person-years", -84.27, -130.5, -38.04)


def _passing() -> list[Check]:
    return [at_least("treated_episodes", 500, 11), below("balance_max_abs_smd", 0.04, 0.1)]


def test_a_failed_check_makes_the_verdict_unpublishable_whatever_the_estimate() -> None:
    verdict = decide([*_passing(), below("balance_max_abs_smd", 0.22, 0.1)], EFFECT, None)
    assert not verdict.publishable
    assert verdict.kind == "not_publishable"
    assert [c.name for c in verdict.failed] == ["balance_max_abs_smd"]
    assert verdict.numbers["estimate"] == pytest.approx(-84.27)  # the numbers stay, for the analyst


@pytest.mark.parametrize(
    ("effect", "savings", "kind"),
    [
        (EFFECT, {"low": 10.0, "central": 20.0, "high": 30.0}, "effect_detected"),
        (EFFECT, {"low": -3.0, "central": -2.0, "high": -1.0}, "costs_more_than_it_saves"),
        (EFFECT, {"low": -3.0, "central": 2.0, "high": 5.0}, "effect_detected"),
        (Effect("x", "Zarit points", -1.0, -3.0, 1.0), None, "no_effect_detected"),
        (Effect("x", "Zarit points", 2.0, 0.5, 3.5), None, "effect_detected"),
    ],
)
def test_the_kind_of_verdict(effect: Effect, savings: dict[str, float] | None, kind: str) -> None:
    verdict = decide(_passing(), effect, savings)
    assert verdict.publishable
    assert verdict.kind == kind


def test_a_count_below_its_threshold_is_never_stored_or_printed() -> None:
    from pipelines.impact.gate import size_checks
    from pipelines.impact.messages import check_sentence
    from pipelines.impact.spec import Thresholds

    treated, comparison = size_checks(Thresholds(), 240, 4)
    assert treated.value == 240
    assert comparison.value is None
    assert not comparison.passed
    assert check_sentence(comparison, "fr") == "épisodes de comparaison : moins de 11 (au moins 11)"
    assert "4" not in decide([treated, comparison], EFFECT, None).dumps().split('"comparison_episodes"')[1][:60]


def test_no_estimate_or_no_check_is_never_publishable() -> None:
    assert not decide(_passing(), None, None).publishable
    assert not decide([], EFFECT, None).publishable


def test_a_stored_verdict_cannot_claim_publication_over_a_failed_check() -> None:
    verdict = decide([*_passing(), interval_includes_zero("pre_trend_placebo", 50.0, 10.0, 90.0)], EFFECT, None)
    tampered = verdict.as_json() | {"publishable": True, "kind": "effect_detected"}
    read = Verdict.from_json(json.dumps(tampered))
    assert not read.publishable
    assert read.kind == "not_publishable"
    again = Verdict.from_json(verdict.dumps())
    assert again == verdict


def test_numbers_money_and_dates_in_french_and_english() -> None:
    assert money(-345_647.2, "fr") == "\u2212345\u202f647\u00a0€"
    assert money(-345_647.2, "en") == "\u2212€345,647"
    assert day(date(2026, 11, 30), "fr") == "30 nov. 2026"
    assert day(date(2026, 11, 30), "en") == "30 Nov 2026"
    assert number(1234.56, 1, "fr") == "1\u202f234,6"
    assert number(-0.5, 2, "en") == "\u22120.50"


def test_the_verdict_in_plain_words() -> None:
    numbers = decide(_passing(), EFFECT, None).numbers
    assert effect_phrase(numbers, "fr") == "une réduction de 84,3 (38,0 à 130,5) pour 1\u202f000 années-personnes"
    assert effect_phrase(numbers, "en") == "a reduction of 84.3 (38.0 to 130.5) per 1,000 person-years"
    none = decide(_passing(), Effect("x", "per 1,000 person-years", -10.0, -60.0, 40.0), None)
    assert headline(none, "fr") == (
        "Aucun effet n'a pu être mis en évidence ; cette étude pouvait détecter des effets supérieurs à "
        "71,4 pour 1\u202f000 années-personnes."
    )
    costly = decide(_passing(), EFFECT, {"low": -345_647.0, "central": -200_000.0, "high": -10.0})
    assert "coûte plus qu'il ne rapporte dans tous les scénarios de coût" in headline(costly, "fr")
    assert "\u2212345\u202f647\u00a0€" in headline(costly, "fr")
    failed = decide([*_passing(), below("balance_max_abs_smd", 0.22, 0.1, covariate="age")], EFFECT, None)
    assert headline(failed, "fr") == (
        "Contrôles non satisfaits : équilibre des covariables : |SMD| maximal 0,220 (age) (doit rester sous 0,1)."
    )
    assert headline(failed, "en").startswith("Checks not met: covariate balance: largest |SMD| 0.220 (age)")


def test_every_check_the_gate_can_run_has_words_in_both_languages() -> None:
    import inspect

    from pipelines.impact import gate, study

    source = inspect.getsource(study) + inspect.getsource(gate)
    named = set(re.findall(r'(?:at_least|at_most|below|within|interval_includes_zero|failure|Check)\(\s*"([a-z_]+)"',
                           source))  # fmt: skip
    named |= {f"effective_sample_size_{arm}" for arm in ("treated", "comparison")}
    named.discard("effective_sample_size_")
    assert named <= set(CHECKS), named - set(CHECKS)
    for templates in [*CHECKS.values(), *MESSAGES.values()]:
        assert set(templates) == {"fr", "en"}


# --- no output can say "passed" while a check failed ------------------------------------------------

POSITIVE = re.compile(
    "|".join(
        [
            r"\bpassed\b",
            r"every pre-set",
            r"all passed",
            r"tous les contrôles",
            re.escape(MESSAGES["status.publishable"]["en"]),
            re.escape(MESSAGES["status.publishable"]["fr"]),
        ]
    ),
    re.IGNORECASE,
)


def _failing_row() -> dict[str, object]:
    verdict = decide([*_passing(), below("balance_max_abs_smd", 0.22, 0.1, covariate="age")], EFFECT, None)
    return {
        "study": "hospitalisations_did",
        "study_version": "2.0.0",
        "question": "How much more did admissions fall?",
        "design": "did",
        "estimand": "att",
        "role": "main",
        "dimension": "all",
        "dimension_value": "all",
        "outcome": "unplanned_admissions",
        "estimate": -84.27,
        "ci_low": -130.5,
        "ci_high": -38.04,
        "estimate_calibrated": None,
        "ci_low_calibrated": None,
        "ci_high_calibrated": None,
        "unit": "per 1,000 person-years",
        "n_treated": 600,
        "n_comparison": 200,
        "variance_method": "influence function",
        "publishable": False,
        "verdict": verdict.dumps(),
        "diagnostics": "{}",
        "funder_figures": "{}",
    }


@pytest.mark.parametrize("language", ["fr", "en"])
def test_no_rendering_of_a_failed_verdict_says_it_passed(language: str) -> None:
    row = _failing_row()
    verdict = Verdict.from_json(str(row["verdict"]))
    outputs = {
        "status": status(verdict, language),  # type: ignore[arg-type]
        "headline": headline(verdict, language),  # type: ignore[arg-type]
        "render": render(verdict, language),  # type: ignore[arg-type]
        "checks table": json.dumps(check_rows(verdict, language), ensure_ascii=False),  # type: ignore[arg-type]
        "html report": study_report_html(row, {}, {}, "today", language),  # type: ignore[arg-type]
        "csv": csv_safe(study_csv_rows(pl.DataFrame([row]), language)).decode("utf-8"),  # type: ignore[arg-type]
    }
    for name, text in outputs.items():
        assert not POSITIVE.search(text), (name, POSITIVE.search(text))
        assert "0,220" in text or "0.220" in text or name == "status", name


def test_the_cli_prints_the_gate_verdict_and_never_a_pass_over_a_failed_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 2))
    t = (rng.random(400) < 1 / (1 + np.exp(-3 * x[:, 0]))).astype(int)  # poor overlap: balance fails
    y = x[:, 0] + t + rng.normal(size=400)
    path = tmp_path / "data.csv"
    pl.DataFrame({"t": t, "y": y, "a": x[:, 0], "b": x[:, 1]}).write_csv(path)
    base = ["estimate", "--data", str(path), "--treatment", "t", "--outcome", "y", "--covariates", "a,b"]
    assert cli([*base, "--method", "ipw", "--bootstrap", "100", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["publishable"] is False
    assert output["verdict"]["kind"] == "not_publishable"
    for language in ("fr", "en"):
        assert cli([*base, "--method", "ipw", "--bootstrap", "100", "--lang", language]) == 0
        text = capsys.readouterr().out
        assert not POSITIVE.search(text), text
        assert ("Non publiable" if language == "fr" else "Not publishable") in text


@pytest.fixture
def _quiet_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.usefixtures("_quiet_gc")
def test_no_served_output_says_a_study_passed_while_one_of_its_checks_failed(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every output of a served study: `parcours studies`, the studies list and study page (analyst view,
    which shows unpublishable studies), the HTML report and the CSV export."""
    monkeypatch.setenv("PARCOURS_DATA_DIR", str(tmp_path))
    with warehouse.connect(small_run.settings.serving_path, read_only=True) as con:
        rows = warehouse.query(con, "select * from mart_impact_studies")
    failing = [
        r for r in rows.filter(pl.col("role") == "main").iter_rows(named=True) if Verdict.from_json(r["verdict"]).failed
    ]
    assert failing, "the small federation should have at least one study that fails a check"
    for language in ("fr", "en"):
        assert cli(["studies", "--serving", str(small_run.settings.serving_path), "--lang", language,
                    "--subgroups"]) == 0  # fmt: skip
        printed = capsys.readouterr().out
        for row in failing:
            block = printed.split(f"{row['study']} (v")[1].split("\n  ")[1]
            assert not POSITIVE.search(block), block
        for row in failing:
            study_rows = rows.filter(pl.col("study") == row["study"])
            report = study_report_html(row, {}, json.loads(row["funder_figures"] or "{}"), "today", language)
            assert not POSITIVE.search(report)
            # Every row of a study that fails a check carries a failed verdict (subgroups need the whole study).
            csv = csv_safe(study_csv_rows(study_rows, language)).decode("utf-8")
            assert not POSITIVE.search(csv)
    at = _app(monkeypatch, small_run.settings.serving_path, ANALYST)
    at.switch_page("app_pages/funder_studies.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    for row in failing:
        line = table[table["study"] == row["study"]]
        assert not POSITIVE.search(" ".join(str(v) for v in line.iloc[0].tolist()))
    for row in failing:
        at.session_state["study"] = row["study"]
        at.switch_page("app_pages/funder_study.py").run()
        assert not at.exception
        shown = [e.value for e in at.success] + [m.value for m in at.markdown] + [e.value for e in at.error]
        assert not at.success, shown
        assert not any(POSITIVE.search(str(v)) for v in shown), shown
        assert any(str(v).startswith("Non publiable") for v in [e.value for e in at.error])
