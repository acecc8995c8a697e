"""One gate, one verdict: its decisions, its words in French and English, and every output that prints it."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards import data_access
from dashboards.access import Viewer
from dashboards.exports import csv_safe
from dashboards.reports import study_csv_rows, study_report_html
from dashboards.study_content import question, study_content
from pipelines import warehouse
from pipelines.cli import main as cli
from pipelines.impact.gate import Check, Effect, Verdict, at_least, below, decide, interval_includes_zero
from pipelines.presentation.catalogue import keys, messages
from pipelines.presentation.formats import day, money, number
from pipelines.presentation.verdict import check_rows, effect_phrase, headline, render, status
from pipelines.publication.study_verdicts import (
    CHECK_VALUES,
    DETAIL_KEYS,
    decision,
    decision_problems,
    release_verdict,
    verdict_problems,
)
from tests.conftest import PipelineRun
from tests.hypothesis_budget import examples
from tests.test_dashboard import ANALYST, FUNDER, _app

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
    from pipelines.impact.spec import Thresholds
    from pipelines.presentation.verdict import check_sentence

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
    none = decide(_passing(), Effect("unplanned_admissions", "per 1,000 person-years", -10.0, -60.0, 40.0), None)
    assert headline(none, "fr") == (
        "On ne peut pas dire si les hospitalisations non programmées ont baissé : aucun effet n'a pu être mis en "
        "évidence, et cette étude pouvait détecter des effets supérieurs à 71,4 pour 1\u202f000 années-personnes."
    )
    assert headline(none, "en").startswith("We cannot tell whether unplanned hospitalisations fell")
    costly = decide(_passing(), EFFECT, {"low": -345_647.0, "central": -200_000.0, "high": -10.0})
    assert "coûte plus qu'il ne rapporte dans tous les scénarios de coût" in headline(costly, "fr")
    assert "\u2212345\u202f647\u00a0€" in headline(costly, "fr")
    failed = decide([*_passing(), below("balance_max_abs_smd", 0.22, 0.1, covariate="age")], EFFECT, None)
    assert headline(failed, "fr") == (
        "Cette étude ne permet pas de répondre à sa question. "
        "Contrôles non satisfaits : équilibre des covariables : |SMD| maximal 0,220 (âge) (doit rester sous 0,1)."
    )
    assert headline(failed, "en").startswith(
        "This study cannot answer its question. Checks not met: covariate balance: largest |SMD| 0.220 (age)"
    )


def test_every_check_the_gate_can_run_has_words_in_both_languages() -> None:
    import inspect

    from pipelines.impact import gate, study

    source = inspect.getsource(study) + inspect.getsource(gate)
    named = set(re.findall(r'(?:at_least|at_most|below|within|interval_includes_zero|failure|Check)\(\s*"([a-z_]+)"',
                           source))  # fmt: skip
    named |= {f"effective_sample_size_{arm}" for arm in ("treated", "comparison")}
    named.discard("effective_sample_size_")
    assert {f"check.{n}" for n in named} <= keys(), named
    assert {f"code.check.{n}" for n in named} <= keys(), named


# --- no output can say "passed" while a check failed ------------------------------------------------

POSITIVE = re.compile(
    "|".join(
        [
            r"\bpassed\b",
            r"every pre-set",
            r"all passed",
            r"tous les contrôles",
            re.escape(messages("en")["verdict.status.publishable"]),
            re.escape(messages("fr")["verdict.status.publishable"]),
        ]
    ),
    re.IGNORECASE,
)


def _report(rows: pl.DataFrame, language: str) -> str:
    """The HTML report of a study's rows, as the study page exports it (no charts: the words are the subject)."""
    content = study_content(rows, {}, {"published_at": "2026-11-30T10:00:00+00:00"}, language)  # type: ignore[arg-type]
    return study_report_html(content, {}, language)  # type: ignore[arg-type]


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
        "html report": _report(pl.DataFrame([row]), language),
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
            report = _report(rows.filter((pl.col("study") == row["study"]) & (pl.col("role") == "main")), language)
            assert not POSITIVE.search(report)
            # Every row of a study that fails a check carries a failed verdict (subgroups need the whole study).
            csv = csv_safe(study_csv_rows(study_rows, language)).decode("utf-8")
            assert not POSITIVE.search(csv)
    at = _app(monkeypatch, small_run.settings.serving_path, ANALYST)
    at.switch_page("app_pages/funder_studies.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    for row in failing:
        line = table[table.iloc[:, 0] == question(row, "fr")]
        assert not POSITIVE.search(" ".join(str(v) for v in line.iloc[0].tolist()))
    for row in failing:
        at.session_state["study"] = row["study"]
        at.switch_page("app_pages/funder_study.py").run()
        assert not at.exception
        shown = [e.value for e in at.success] + [m.value for m in at.markdown] + [e.value for e in at.error]
        assert not at.success, shown
        assert not any(POSITIVE.search(str(v)) for v in shown), shown
        assert any(str(v).startswith("Non publiable") for v in [e.value for e in at.error])


# --- the verdict as released to funders -----------------------------------------------------------------

NOT_A_NUMBER = re.compile(r"\b(None|nan|NaN|inf|null)\b")


def _verdict_of(draw: Callable[..., Any]) -> Verdict:
    """Any verdict the gate can write: each check name with a value or none, passed or not, and numbers."""
    names = draw(st.lists(st.sampled_from(sorted(CHECK_VALUES)), min_size=1, max_size=8, unique=True))
    checks = []
    for name in names:
        passed = draw(st.booleans())
        value = draw(st.none() | st.floats(0, 5000, allow_nan=False))
        threshold: float | list[float] | None = draw(st.sampled_from([11, 50, 0.1, 30.0, None]))
        if name in ("variance_ratio", "pre_trend_placebo"):
            threshold = [draw(st.floats(-200, 0)), draw(st.floats(0, 200))]
        detail = {
            key: draw(st.floats(0, 3)) if DETAIL_KEYS[key] == "guarded" else draw(st.sampled_from(["age", 6, [5, 7]]))
            for key in draw(st.lists(st.sampled_from(["covariate", "mean", "sd", "ratio", "declared"]), unique=True))
        }
        if name == "estimation":
            detail["reason"] = "n_samples=7 is too few"
        checks.append(Check(name, value, threshold, passed, detail))
    effect = None
    if draw(st.booleans()):
        low = draw(st.floats(-300, 100))
        effect = Effect("unplanned_admissions", "per 1,000 person-years", low + 20, low, low + 40,
                        uncalibrated=(low + 15, low - 5, low + 35) if draw(st.booleans()) else None)  # fmt: skip
    savings = {"low": -3.0, "central": -2.0, "high": -1.0} if draw(st.booleans()) else None
    return decide(checks, effect, savings)


@settings(max_examples=examples(300), deadline=None)
@given(st.data())
def test_the_verdict_released_to_funders_decides_what_the_analysts_verdict_decides(data: st.DataObject) -> None:
    verdict = _verdict_of(data.draw)
    row = {
        "n_treated": data.draw(st.none() | st.integers(11, 900)),
        "n_comparison": data.draw(st.none() | st.integers(11, 900)),
        "treated_value": data.draw(st.none() | st.floats(1, 900)),
        "publishable": verdict.publishable,
    }
    released_text = release_verdict(verdict.dumps(), row)
    assert released_text is not None
    released = Verdict.from_json(released_text)
    # The same decision: never "publishable" for funders when the analysts' verdict is not, nor the reverse.
    assert decision(released_text) == decision(verdict.dumps())
    assert (released.publishable, released.kind) == (verdict.publishable, verdict.kind)
    assert [(c.name, c.passed) for c in released.checks] == [(c.name, c.passed) for c in verdict.checks]
    assert verdict_problems({**row, "verdict": released_text}) == []
    for language in ("fr", "en"):
        words = " ".join([render(released, language), *(r for c in check_rows(released, language) for r in c.values())])
        assert not NOT_A_NUMBER.search(words), words
        assert "n_samples" not in words  # a failure's reason is free text: not released
        if released.failed:
            assert not POSITIVE.search(render(released, language))
    for check in released.checks:
        if check.name.startswith("effective_sample_size") or check.name == "equipoise_share":
            assert check.value is None
        if check.name in ("treated_episodes", "comparison_episodes") and check.value is not None:
            arm = "n_treated" if check.name == "treated_episodes" else "n_comparison"
            assert check.value == row[arm]


def test_a_released_verdict_that_leaks_or_changes_the_decision_is_refused() -> None:
    verdict = decide([at_least("treated_episodes", 240, 11), at_least("effective_sample_size_treated", 231, 30),
                      below("balance_max_abs_smd", 0.22, 0.1)], EFFECT, None)  # fmt: skip
    row = {"study": "s", "role": "main", "dimension": "all", "dimension_value": "all", "outcome": "o",
           "n_treated": 243, "n_comparison": 120, "treated_value": None, "publishable": False}  # fmt: skip
    honest = release_verdict(verdict.dumps(), row)
    assert honest is not None
    assert verdict_problems({**row, "verdict": honest}) == []
    assert sorted(verdict_problems({**row, "verdict": verdict.dumps()})) == [
        "checks.effective_sample_size_treated: a value that is not released",
        "checks.treated_episodes: an arm size that is not the released one",
    ]
    tampered = json.loads(honest) | {"publishable": True, "kind": "effect_detected"}
    for check in tampered["checks"]:
        check["passed"] = True
    problems = decision_problems([{**row, "verdict": verdict.dumps()}], [{**row, "verdict": json.dumps(tampered)}])
    assert problems == ["release_studies.verdict (s, main): not the analyst's decision"]


def test_withheld_numbers_are_said_to_be_withheld_in_both_languages() -> None:
    verdict = decide([at_least("treated_episodes", 240, 11), at_least("effective_sample_size_comparison", 40.2, 30)],
                     Effect("unplanned_admissions", "per 1,000 person-years", -84.27, -130.5, -38.04,
                            uncalibrated=(-80.0, -120.0, -40.0)), None)  # fmt: skip
    hidden_rate = release_verdict(verdict.dumps(), {"n_treated": 243, "n_comparison": 40, "treated_value": None})
    assert hidden_rate is not None
    released = Verdict.from_json(hidden_rate)
    assert headline(released, "fr") == (
        "Effet mis en évidence (chiffres non communiqués : trop peu de personnes ou d'événements)."
    )
    assert headline(released, "en") == "Effect detected (figures not shown: too few people or events)."
    assert check_rows(released, "fr")[1] == {
        "contrôle": "Taille d'échantillon effective, comparaison", "valeur": "non communiqué", "seuil": "au moins 30",
        "résultat": "satisfait",
    }  # fmt: skip
    assert check_rows(released, "fr")[0] == {
        "contrôle": "Épisodes suivis", "valeur": "243", "seuil": "au moins 11", "résultat": "satisfait",
    }  # fmt: skip
    shown = release_verdict(verdict.dumps(), {"n_treated": 243, "n_comparison": 40, "treated_value": 300.0})
    assert headline(Verdict.from_json(str(shown)), "fr") == headline(verdict, "fr")


def _withheld_anything(text: str) -> bool:
    raw = json.loads(text)
    return "not_shown" in (raw.get("numbers") or {}) or any("not_shown" in c.get("detail", {}) for c in raw["checks"])


@pytest.mark.usefixtures("_quiet_gc")
def test_no_output_of_the_funders_release_says_a_study_passed_while_a_check_failed(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The funders' path: data access on their release, the CSV export and HTML report, `parcours studies
    --audience funders`, and the pages a funder opens. Where nothing had to be withheld, funders and analysts
    read the same sentence."""
    monkeypatch.setenv("PARCOURS_DATA_DIR", str(tmp_path))
    serving = small_run.settings.serving_path
    monkeypatch.setenv("PARCOURS_SERVING", str(serving))
    funder, analyst = Viewer(FUNDER, "funder"), Viewer(ANALYST, "analyst")
    published = data_access.studies(funder)["study"].to_list()
    assert published, "the small federation publishes at least one study to funders"
    failing_rows = 0
    for study in published:
        rows = data_access.study_detail(funder, study)
        truth = {(r["role"], r["dimension"], r["dimension_value"], r["outcome"]): r["verdict"]
                 for r in data_access.study_detail(analyst, study).iter_rows(named=True)}  # fmt: skip
        for language in ("fr", "en"):
            exported = study_csv_rows(rows, language)
            for row, words in zip(rows.iter_rows(named=True), exported["verdict"], strict=True):
                verdict = Verdict.from_json(row["verdict"])
                assert not NOT_A_NUMBER.search(words), words
                if verdict.failed:
                    failing_rows += 1
                    assert not POSITIVE.search(words), words
                stored = truth[(row["role"], row["dimension"], row["dimension_value"], row["outcome"])]
                if not _withheld_anything(row["verdict"]):
                    assert words == render(Verdict.from_json(stored), language)
                else:  # the same kind of sentence, with what was withheld said so
                    assert (
                        headline(verdict, language).split(":")[0]
                        == headline(Verdict.from_json(stored), language).split(":")[0]
                    )
            report = _report(rows.filter(pl.col("role") == "main"), language)
            assert not NOT_A_NUMBER.search(report.split("<style>")[0] + report.split("</style>")[1])
            assert cli(["studies", "--serving", str(serving), "--audience", "funders", "--lang", language,
                        "--subgroups"]) == 0  # fmt: skip
            printed = capsys.readouterr().out
            for line in printed.splitlines():
                if line.startswith("    ") and "[" in line:  # a subgroup that fails its own checks
                    assert not POSITIVE.search(line), line
            assert not NOT_A_NUMBER.search(printed)
    assert failing_rows, "subgroups of the published study fail their own checks on the small federation"
    at = _app(monkeypatch, serving, FUNDER)
    at.switch_page("app_pages/funder_studies.py").run()
    assert not at.exception
    listed = at.dataframe[0].value
    assert not any(NOT_A_NUMBER.search(str(v)) for v in listed.to_numpy().ravel())
    for study in published:
        at.session_state["study"] = study
        at.switch_page("app_pages/funder_study.py").run()
        assert not at.exception
        shown = [m.value for m in at.markdown] + [e.value for e in at.success] + [e.value for e in at.error]
        assert not any(NOT_A_NUMBER.search(str(v)) for v in shown), shown
