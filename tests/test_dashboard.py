"""The funder overview page, rendered by Streamlit's AppTest, and disclosure control."""

from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.disclosure import suppress_small_cells
from dashboards.figures import hospitalisation_rates_chart
from tests.conftest import PipelineRun

APP = str(Path(__file__).resolve().parent.parent / "dashboards" / "streamlit_app.py")


def _app(monkeypatch: pytest.MonkeyPatch, serving: Path) -> AppTest:
    monkeypatch.setenv("PARCOURS_SERVING", str(serving))
    return AppTest.from_file(APP, default_timeout=60).run()


def test_overview_shows_headline_numbers_and_a_chart(monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path)
    assert not at.exception
    assert at.title[0].value == "Federation overview"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Agencies"] == "6"
    assert metrics["Persons care-managed"] not in ("", "suppressed")
    assert int(metrics["Rate, care-managed"].replace(",", "")) > 0
    assert int(metrics["Rate, comparison"].replace(",", "")) > 0
    assert [m.delta for m in at.metric][3].startswith("95% CI ")
    assert len(at.get("plotly_chart")) == 1
    assert any("not an impact estimate" in w.value for w in at.warning)


def test_small_cells_never_reach_the_page(monkeypatch: pytest.MonkeyPatch, case_study_run: PipelineRun) -> None:
    # The case-study federation has 5 care-managed persons and 1 comparison person.
    at = _app(monkeypatch, case_study_run.settings.serving_path)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Persons care-managed"] == "suppressed"
    assert metrics["Rate, care-managed"] == "suppressed"
    assert [m.delta for m in at.metric][3] in ("", None)
    table = at.dataframe[0].value
    assert table["persons"].isna().all()


def test_a_missing_snapshot_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _app(monkeypatch, tmp_path / "none.duckdb")
    assert not at.exception
    assert "make demo" in at.info[0].value


def test_suppression_blanks_small_counts_and_what_is_derived_from_them() -> None:
    frame = pl.DataFrame({"persons": [0, 5, 11, 200], "events": [0, 30, 4, 40], "rate": [0.0, 1.0, 2.0, 3.0]})
    out = suppress_small_cells(frame, ["persons", "events"], {"rate": ["persons", "events"]})
    assert out["persons"].to_list() == [0, None, 11, 200]
    assert out["events"].to_list() == [0, 30, None, 40]
    assert out["rate"].to_list() == [0.0, None, None, 3.0]
    assert out["suppressed"].to_list() == [False, True, True, False]


def test_rates_chart_has_one_bar_series_per_cohort_with_intervals() -> None:
    rates = pl.DataFrame(
        {
            "cohort": ["care_managed", "care_managed", "comparison", "comparison"],
            "period": ["after", "before", "after", "before"],
            "unplanned_rate_per_1000py": [240.0, 330.0, 255.0, 280.0],
            "unplanned_rate_ci_low": [220.0, 300.0, 210.0, 230.0],
            "unplanned_rate_ci_high": [260.0, 350.0, 300.0, 320.0],
        }
    )
    figure = hospitalisation_rates_chart(rates)
    assert [trace.name for trace in figure.data] == ["Care-managed", "Comparison"]
    first = figure.data[0]
    assert list(first.x) == ["12 months before index", "After index"]
    assert list(first.y) == [330.0, 240.0]
    assert list(first.error_y.array) == [20.0, 20.0]
