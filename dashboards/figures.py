"""Plotly figures as pure functions of tables: no Streamlit, no database."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.colors import sample_colorscale

COHORT_LABELS = {"care_managed": "Care-managed", "comparison": "Comparison"}
COHORT_COLOURS = {"care_managed": "#1b6ca8", "comparison": "#9a9a9a"}
PERIOD_LABELS = {"before": "12 months before index", "after": "After index"}


def hospitalisation_rates_chart(rates: pl.DataFrame) -> go.Figure:
    """Unplanned admissions per 1,000 person-years by period, one bar per cohort, 95% intervals."""
    figure = go.Figure()
    for cohort in ("care_managed", "comparison"):
        rows = rates.filter(pl.col("cohort") == cohort)
        rows = rows.sort(pl.col("period").replace_strict({"before": 0, "after": 1}, default=2))
        if rows.is_empty():
            continue
        rate = rows["unplanned_rate_per_1000py"]
        figure.add_bar(
            name=COHORT_LABELS.get(cohort, cohort),
            x=[PERIOD_LABELS.get(p, p) for p in rows["period"]],
            y=rate.to_list(),
            marker_color=COHORT_COLOURS.get(cohort),
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (rows["unplanned_rate_ci_high"] - rate).to_list(),
                "arrayminus": (rate - rows["unplanned_rate_ci_low"]).to_list(),
            },
            hovertemplate="%{x}<br>%{y:.0f} per 1,000 person-years<extra>%{fullData.name}</extra>",
        )
    figure.update_layout(
        barmode="group",
        yaxis_title="Unplanned admissions per 1,000 person-years",
        legend_title_text="Cohort",
        margin={"t": 30, "b": 10},
        height=380,
    )
    return figure


def _empty(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(xaxis_visible=False, yaxis_visible=False, height=200, margin={"t": 10, "b": 10})
    return figure


SUBGROUP_LABELS = {"all": "All", "gir_band": "GIR band", "age_band": "Age band", "agency_model": "Agency model"}


def forest_plot(rows: pl.DataFrame, unit: str, calibrated: bool = False) -> go.Figure:
    """Effect and 95% interval per subgroup, the whole study first; suppressed or unestimated rows say so.

    The rows' own estimates are drawn: uncalibrated ones when the study's published intervals are calibrated
    (``calibrated``), which the axis says (a subgroup's calibrated interval gives back its observed rate, and
    is not released to funders)."""
    if rows.is_empty():
        return _empty("No subgroup estimates for this study.")
    rows = rows.with_columns(
        pl.format("{}: {}", pl.col("dimension").replace(SUBGROUP_LABELS), pl.col("dimension_value")).alias("label")
    ).with_columns(pl.when(pl.col("dimension") == "all").then(pl.lit("All")).otherwise(pl.col("label")).alias("label"))
    shown = rows.filter(pl.col("estimate").is_not_null())
    missing = rows.filter(pl.col("estimate").is_null())["label"].to_list()
    figure = go.Figure()
    figure.add_scatter(
        x=shown["estimate"].to_list(),
        y=shown["label"].to_list(),
        mode="markers",
        marker={"size": 10, "color": "#1b6ca8", "symbol": "square"},
        error_x={
            "type": "data",
            "symmetric": False,
            "array": (shown["ci_high"] - shown["estimate"]).to_list(),
            "arrayminus": (shown["estimate"] - shown["ci_low"]).to_list(),
        },
        hovertemplate="%{y}: %{x:.1f}<extra></extra>",
        name="estimate",
    )
    figure.add_vline(x=0, line_dash="dash", line_color="#777")
    figure.update_layout(
        xaxis_title=f"Difference, care-managed minus counterfactual ({unit})"
        + (", uncalibrated 95% intervals" if calibrated else ""),
        yaxis={"autorange": "reversed", "categoryorder": "array", "categoryarray": rows["label"].to_list()},
        height=120 + 32 * rows.height,
        margin={"t": 30, "b": 10},
        showlegend=False,
    )
    if missing:
        figure.add_annotation(
            text="Not shown (too few people or not estimable): " + ", ".join(missing),
            showarrow=False,
            x=0,
            y=-0.25,
            xref="paper",
            yref="paper",
            xanchor="left",
            font={"size": 11},
        )
    return figure


CURVE_LABELS = {"care_managed": "Care-managed", "comparison_weighted": "Counterfactual (weighted comparison)"}


def incidence_chart(curves: pl.DataFrame) -> go.Figure:
    """Cumulative incidence of a first unplanned admission with 95% bands, death competing; released points
    joined by steps (for funders a point is released only after enough new events)."""
    if curves.is_empty():
        return _empty("No cumulative-incidence curves for this study.")
    figure = go.Figure()
    colours = {"care_managed": "#1b6ca8", "comparison_weighted": "#c45a10"}
    for curve in ("care_managed", "comparison_weighted"):
        rows = (
            curves.filter(pl.col("curve") == curve)
            .sort("day")
            .select("day", "cumulative_incidence", "ci_low", "ci_high")
        )
        if rows.is_empty():
            continue
        if rows["day"][0] > 0:  # released points are coarse: the curve starts from none at enrolment
            origin = pl.DataFrame({"day": [0], "cumulative_incidence": [0.0], "ci_low": [0.0], "ci_high": [0.0]})
            rows = pl.concat([origin.cast(rows.schema), rows])
        colour = colours[curve]
        figure.add_scatter(
            x=rows["day"].to_list() + rows["day"].reverse().to_list(),
            y=(rows["ci_high"] * 100).to_list() + (rows["ci_low"] * 100).reverse().to_list(),
            fill="toself",
            line={"width": 0},
            fillcolor=colour,
            opacity=0.15,
            hoverinfo="skip",
            showlegend=False,
        )
        figure.add_scatter(
            x=rows["day"].to_list(),
            y=(rows["cumulative_incidence"] * 100).to_list(),
            mode="lines",
            line={"color": colour, "shape": "hv"},
            name=CURVE_LABELS[curve],
            hovertemplate="day %{x}: %{y:.1f}%<extra>%{fullData.name}</extra>",
        )
    figure.update_layout(
        xaxis_title="Days after enrolment",
        yaxis_title="With a first unplanned admission (%)",
        height=380,
        margin={"t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def balance_plot(diagnostics: dict[str, object]) -> go.Figure:
    """Standardised mean differences before and after adjustment (a 'love plot'), with the 0.1 limit."""
    covariates = list(diagnostics.get("covariates", []))  # type: ignore[call-overload]
    before = list(diagnostics.get("smd_before", []))  # type: ignore[call-overload]
    after = list(diagnostics.get("smd_after", []))  # type: ignore[call-overload]
    if not covariates or len(before) != len(covariates):
        return _empty("No balance diagnostics for this study.")
    figure = go.Figure()
    figure.add_scatter(
        x=[abs(v) for v in before],
        y=covariates,
        mode="markers",
        name="Before adjustment",
        marker={"color": "#9a9a9a", "size": 9},
    )
    figure.add_scatter(
        x=[abs(v) for v in after],
        y=covariates,
        mode="markers",
        name="After adjustment",
        marker={"color": "#1b6ca8", "size": 9, "symbol": "diamond"},
    )
    figure.add_vline(x=0.1, line_dash="dash", line_color="#c00", annotation_text="0.1")
    figure.update_layout(
        xaxis_title="|Standardised mean difference|",
        height=120 + 26 * len(covariates),
        margin={"t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.15},
    )
    return figure


def overlap_plot(diagnostics: dict[str, object]) -> go.Figure:
    """Propensity-score distributions of both arms (binned; bins under 11 are blank outside the federation)."""
    histogram = diagnostics.get("propensity_histogram") or {}
    if not isinstance(histogram, dict) or not histogram:
        return _empty("No propensity overlap for this design.")
    bins = len(next(iter(histogram.values())))
    centres = [(i + 0.5) / bins for i in range(bins)]
    figure = go.Figure()
    for arm, label, colour in (("treated", "Care-managed", "#1b6ca8"), ("control", "Comparison", "#c45a10")):
        counts = histogram.get(arm, [])
        total = sum(c for c in counts if c) or 1
        figure.add_bar(
            x=centres,
            y=[None if c is None else 100 * c / total for c in counts],
            name=label,
            marker_color=colour,
            opacity=0.6,
            width=1 / bins,
        )
    figure.update_layout(
        barmode="overlay",
        xaxis_title="Propensity score",
        yaxis_title="Share of the arm (%)",
        height=320,
        margin={"t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _rounded(coordinates: Any, digits: int) -> Any:
    if coordinates and isinstance(coordinates[0], int | float):
        return [round(c, digits) for c in coordinates]
    rings = [_rounded(c, digits) for c in coordinates]
    if rings and rings[0] and isinstance(rings[0][0], float):  # a ring of points: drop repeats
        kept = [rings[0]] + [point for previous, point in itertools.pairwise(rings) if point != previous]
        return kept if len(kept) >= 4 else rings
    return rings


def outlines_for_map(geojson: dict[str, Any], digits: int = 2) -> dict[str, Any]:
    """Coordinates to ``digits`` decimals (0.01° is about a kilometre, finer than a national map shows):
    the outlines are sent to the browser on every rerun, and this makes them about three times smaller."""
    features = [
        {**f, "geometry": {**f["geometry"], "coordinates": _rounded(f["geometry"]["coordinates"], digits)}}
        for f in geojson["features"]
    ]
    return {**geojson, "features": features}


MAP_GREY = "#d9d9d9"
MAP_ASPECT = 1 / np.cos(np.radians(46.5))
"""Degrees of latitude drawn this much taller than degrees of longitude: France looks right at 46.5°N."""


def _rings(geometry: dict[str, Any]) -> list[list[list[float]]]:
    polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    return [ring for polygon in polygons for ring in polygon]


def territory_map(rows: pl.DataFrame, geojson: dict[str, Any], value: str, title: str) -> go.Figure:
    """A choropleth drawn as filled outlines on plain axes: no map tiles, no base layer, nothing fetched.

    ``rows`` hold one area each (``dimension_value`` matching the outlines' ``code``, ``label``,
    ``value`` and, when present, ``unplanned_rate_ci_low``/``_high``); areas without a value are grey.
    """
    values = dict(zip(rows["dimension_value"].to_list(), rows[value].to_list(), strict=True))
    labels = dict(zip(rows["dimension_value"].to_list(), rows["label"].to_list(), strict=True))
    bounds = {}
    if {"unplanned_rate_ci_low", "unplanned_rate_ci_high"} <= set(rows.columns):
        bounds = {
            r["dimension_value"]: (r["unplanned_rate_ci_low"], r["unplanned_rate_ci_high"])
            for r in rows.iter_rows(named=True)
        }
    shown = [v for v in values.values() if v is not None]
    low, high = (min(shown), max(shown)) if shown else (0.0, 1.0)
    span = (high - low) or 1.0
    figure = go.Figure()
    for feature in geojson["features"]:
        code = str(feature["properties"]["code"])
        x: list[float | None] = []
        y: list[float | None] = []
        for ring in _rings(feature["geometry"]):
            x += [p[0] for p in ring] + [None]
            y += [p[1] for p in ring] + [None]
        amount = values.get(code)
        name = labels.get(code, feature["properties"].get("nom", code))
        if amount is None:
            colour, text = MAP_GREY, f"{name}: not shown (too few people)"
        else:
            colour = sample_colorscale("Blues", [0.15 + 0.85 * (amount - low) / span])[0]
            interval = bounds.get(code)
            text = f"{name}: {amount:,.0f}" + (
                f" (95% CI {interval[0]:,.0f} to {interval[1]:,.0f})" if interval and None not in interval else ""
            )
        figure.add_scatter(
            x=x, y=y, fill="toself", fillcolor=colour, mode="lines", line={"color": "white", "width": 0.6},
            hoveron="fills", text=text, hoverinfo="text", showlegend=False, name=code,
        )  # fmt: skip
    figure.add_scatter(
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker={"colorscale": [[0, sample_colorscale("Blues", [0.15])[0]], [1, sample_colorscale("Blues", [1.0])[0]]],
                "cmin": low, "cmax": high, "color": [low], "showscale": bool(shown),
                "colorbar": {"title": {"text": title}}},
    )  # fmt: skip
    figure.update_layout(
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x", "scaleratio": MAP_ASPECT},
        plot_bgcolor="white",
        height=560,
        margin={"t": 10, "b": 10, "l": 0, "r": 0},
    )
    return figure


def funnel_plot(own: pl.DataFrame, peers: pl.DataFrame, own_label: str) -> go.Figure:
    """Observed/expected against expected, with 95% and 99.8% Poisson control limits around 1."""
    expected = pl.concat([own["expected"], peers["expected"]]).drop_nulls().cast(pl.Float64).to_numpy()
    if expected.size == 0:
        return _empty("No benchmark for this agency.")
    grid = np.linspace(max(1.0, expected.min() * 0.5), expected.max() * 1.2, 200)
    figure = go.Figure()
    for z, dash, label in ((1.959964, "dash", "95% limits"), (3.090232, "dot", "99.8% limits")):
        for sign in (1, -1):
            limit = 1 + sign * z / np.sqrt(grid)
            figure.add_scatter(
                x=grid,
                y=limit,
                mode="lines",
                line={"color": "#999", "dash": dash},
                name=label,
                showlegend=sign == 1,
                hoverinfo="skip",
            )
    figure.add_hline(y=1, line_color="#555")
    if peers.height:
        figure.add_scatter(
            x=peers["expected"].to_list(),
            y=peers["observed_over_expected"].to_list(),
            mode="markers",
            text=peers["peer"].to_list(),
            name="Peers",
            marker={"color": "#9a9a9a", "size": 9},
            hovertemplate="%{text}: %{y:.2f}<extra></extra>",
        )
    figure.add_scatter(
        x=own["expected"].to_list(),
        y=own["observed_over_expected"].to_list(),
        mode="markers",
        name=own_label,
        marker={"color": "#c45a10", "size": 14, "symbol": "star"},
        hovertemplate=own_label + ": %{y:.2f}<extra></extra>",
    )
    figure.update_layout(
        xaxis_title="Expected unplanned admissions (federation rates for its age and GIR mix)",
        yaxis_title="Observed / expected",
        height=420,
        margin={"t": 30, "b": 10},
    )
    return figure


def caseload_chart(caseload: pl.DataFrame) -> go.Figure:
    """Active care-managed episodes and episodes per full-time care manager, by month."""
    if caseload.is_empty():
        return _empty("No caseload for this agency.")
    figure = go.Figure()
    figure.add_bar(
        x=caseload["month_start"].to_list(),
        y=caseload["active_episodes"].to_list(),
        name="Active cases",
        marker_color="#9ec3e0",
    )
    figure.add_scatter(
        x=caseload["month_start"].to_list(),
        y=caseload["episodes_per_fte"].to_list(),
        name="Cases per care manager (FTE)",
        yaxis="y2",
        line={"color": "#1b6ca8"},
    )
    figure.update_layout(
        yaxis_title="Active cases",
        yaxis2={"title": "Per FTE", "overlaying": "y", "side": "right"},
        height=360,
        margin={"t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def share_bars(rows: pl.DataFrame, label: str) -> go.Figure:
    """Episodes by category (referral source or payer) as horizontal bars."""
    rows = rows.filter(pl.col("episodes").is_not_null()).sort("episodes")
    if rows.is_empty():
        return _empty("Nothing to show (small counts are suppressed).")
    figure = go.Figure(
        go.Bar(
            x=rows["episodes"].to_list(), y=rows["dimension_value"].to_list(), orientation="h", marker_color="#1b6ca8"
        )
    )
    figure.update_layout(
        xaxis_title="Episodes", yaxis_title=label, height=120 + 28 * rows.height, margin={"t": 20, "b": 10}
    )
    return figure
