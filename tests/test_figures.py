"""The Plotly figure builders: titled, axes labelled with units, categories in their natural order, the zero line
visible, wide intervals cut with an arrow, and funnel limits that stay in the measure's range."""

from __future__ import annotations

from datetime import date

import numpy as np
import plotly.graph_objects as go
import polars as pl
import pytest

from dashboards.figures import (
    balance_plot,
    caseload_chart,
    forest_plot,
    funnel_plot,
    hospitalisation_rates_chart,
    poisson_ratio_limits,
    proportion_limits,
    share_bars,
)
from pipelines.presentation.catalogue import Language, label


def _title(figure: go.Figure) -> str:
    return str(figure.layout.title.text or "").replace("<br>", " ")


def _subgroups() -> pl.DataFrame:
    rows = [
        ("all", "all", -40.0, -70.0, -10.0, ""),
        ("age_band", "95 and over", -30.0, -1500.0, 900.0, ""),  # one very wide interval
        ("age_band", "under 60", -20.0, -60.0, 20.0, ""),
        ("age_band", "75-84", -45.0, -80.0, -10.0, ""),
        ("gir_band", "GIR 5-6", None, None, None, ""),
        ("gir_band", "GIR 1-2", -50.0, -90.0, -5.0, "ne satisfait pas ses propres contrôles"),
    ]
    return pl.DataFrame(
        rows, schema=["dimension", "dimension_value", "estimate", "ci_low", "ci_high", "mark"], orient="row"
    )


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_forest_plot_keeps_its_axis_for_the_whole_study_and_cuts_wide_intervals_with_an_arrow(
    language: Language,
) -> None:
    figure = forest_plot(_subgroups(), "pour 1 000 années-personnes", language)
    assert _title(figure)
    assert "pour 1 000 années-personnes" in figure.layout.xaxis.title.text.replace("<br>", " ")
    low, high = figure.layout.xaxis.range
    assert low < -70  # the whole study's interval and zero are in view...
    assert high > 0
    assert high - low < 200  # ...and one subgroup's interval of 2,400 does not stretch the axis
    arrows = [t for t in figure.data if t.marker and t.marker.symbol in ("triangle-left", "triangle-right")]
    assert {a.marker.symbol for a in arrows} == {"triangle-left", "triangle-right"}
    assert any(s.x0 == 0 for s in figure.layout.shapes)  # the zero line
    order = list(figure.layout.yaxis.categoryarray)
    assert order[0] == label("subgroup_dimension", "all", language)
    ages = [
        o
        for o in order
        if label("age_band", "under 60", language) in o or label("age_band", "95 and over", language) in o
    ]
    assert label("age_band", "under 60", language) in ages[0]  # natural order, not alphabetical
    assert order.index(next(o for o in order if "GIR 1-2" in o)) < order.index(next(o for o in order if "75" in o))
    assert "GIR 5-6" in figure.layout.xaxis.title.text  # said missing (under the axis), not dropped
    gir = next(o for o in order if "GIR 1-2" in o)
    assert gir.startswith(label("gir_band", "GIR 1-2", language))  # « GIR 1-2 », never « GIR : GIR 1-2 »
    assert f"{label('subgroup_dimension', 'age_band', language)}" in ages[0]  # « Âge : moins de 60 ans »


def test_every_figure_is_titled_and_its_axes_say_what_they_count() -> None:
    rates = pl.DataFrame(
        {
            "cohort": ["care_managed", "care_managed", "comparison", "comparison"],
            "period": ["after", "before"] * 2,
            "unplanned_rate_per_1000py": [300.0, 350.0, 320.0, 330.0],
            "unplanned_rate_ci_low": [250.0, 300.0, 270.0, 280.0],
            "unplanned_rate_ci_high": [350.0, 400.0, 370.0, 380.0],
        }
    )
    caseload = pl.DataFrame(
        {
            "month_start": [date(2026, m, 1) for m in range(1, 7)],
            "active_episodes": [20, 22, 25, 24, 26, 30],
            "episodes_per_fte": [20.0, 22, 25, 24, 26, 30],
        }
    )
    shares = pl.DataFrame({"dimension_value": ["ccas", "pension_fund", "hospital"], "episodes": [40, 12, None]})
    diagnostics = {"covariates": ["age", "gir_1_2"], "smd_before": [0.3, -0.2], "smd_after": [0.02, 0.01]}
    figures = {
        "rates": hospitalisation_rates_chart(rates, "fr"),
        "caseload": caseload_chart(caseload, "fr"),
        "shares": share_bars(shares, "referral_source", "Qui oriente", "fr"),
        "balance": balance_plot(diagnostics, "fr"),
    }
    for name, figure in figures.items():
        assert _title(figure), name
        assert figure.layout.separators == ",\u202f", name  # French decimal comma and thin-space thousands
        axes = [figure.layout[k] for k in figure.layout if k.startswith(("xaxis", "yaxis"))]
        assert all(a.automargin for a in axes), name  # labels push the margins instead of being clipped
        assert all(a.title.text for a in axes if a.visible is not False and not a.matches and a.anchor != "y2"), name
    assert "1\u202f000" in figures["rates"].layout.yaxis.title.text  # the unit
    assert list(figures["rates"].data[0].x) == ["12 mois avant l'inclusion", "après l'inclusion"]
    # Referral sources read as words, largest first; a hidden count is not drawn as zero.
    assert list(figures["shares"].data[0].y) == [
        label("referral_source", "ccas"),
        label("referral_source", "pension_fund"),
    ]
    # The caseload: two panels from zero, months in French, whole counts.
    assert figures["caseload"].layout.yaxis.rangemode == "tozero"
    assert figures["caseload"].layout.yaxis2.rangemode == "tozero"
    assert "janv. 2026" in list(figures["caseload"].layout.xaxis2.ticktext or figures["caseload"].layout.xaxis.ticktext)
    assert list(figures["balance"].data[0].y) == ["âge", "GIR 1-2"]
    assert figures["balance"].layout.legend.yanchor == "bottom"  # the legend above the plot, clear of the axis title


def test_funnel_limits_stay_in_range_for_a_ratio_and_for_a_share() -> None:
    expected = np.array([0.5, 1, 2, 5, 20, 100, 1000.0])
    for z in (1.96, 3.09):
        low, high = poisson_ratio_limits(expected, z)
        assert (low >= 0).all()
        assert (low < 1).all()
        assert (high > 1).all()
        assert np.all(np.diff(high) < 0)  # the funnel narrows as the expected count grows
        share_low, share_high = proportion_limits(0.9, expected, z)
        assert (share_low >= 0).all()
        assert (share_high <= 1).all()
    # Known answer: exact Poisson limits for 10 expected events at 95% are 4.80 and 18.39 events.
    low, high = poisson_ratio_limits(np.array([10.0]), 1.959964)
    assert low[0] == pytest.approx(0.4795, abs=1e-3)
    assert high[0] == pytest.approx(1.839, abs=1e-2)


def test_the_funnel_plot_draws_the_agency_and_anonymous_peers_within_range() -> None:
    own = pl.DataFrame({"n": [12.0], "value": [0.6]})
    peers = pl.DataFrame({"peer": ["Peer 1", "Peer 2", "Peer 3"], "n": [3.0, 40.0, 90.0], "value": [1.4, 1.0, 0.9]})
    figure = funnel_plot(own, peers, "Cette agence", "fr")
    limits = [t for t in figure.data if t.mode == "lines"]
    assert min(min(t.y) for t in limits) >= 0
    assert _title(figure)
    assert figure.layout.xaxis.title.text
    assert figure.layout.yaxis.title.text
    share = funnel_plot(
        own.with_columns(pl.lit(0.95).alias("value")),
        peers.with_columns(pl.lit(0.5).alias("value")),
        "Cette agence",
        "fr",
        kind="share",
        target=0.9,
    )
    assert list(share.layout.yaxis.range) == [0, 1.02]
    assert max(max(t.y) for t in share.data if t.mode == "lines") <= 1
