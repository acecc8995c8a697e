"""Plotly figures as pure functions of tables: no Streamlit, no database, every word from the catalogue.

Each builder takes already-scoped data and the reader's language and returns a titled figure whose
axes say what they count and in which unit. Categories keep their natural order (« moins de 60 ans »
first), the zero line is drawn where a difference is plotted, an interval too wide for the axis is cut
at its edge with an arrow (the hover gives it whole), and control limits of a ratio or a share never
leave its range. Margins grow with their labels (``automargin``) so that nothing is clipped at any width.

A figure is built once from its whole specification (plain dicts for its traces and layout, one
``go.Figure(data=..., layout=...)``): Plotly validates a specification in one pass, whereas each
``add_*``/``update_*`` call parses its property paths and dispatches its changes again, which made a funnel
plot cost 50 ms to build instead of 8 (the peers page draws five at each change of agency).
"""

from __future__ import annotations

import itertools
import textwrap
from datetime import date
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.colors import sample_colorscale
from scipy import stats

from pipelines.presentation.catalogue import Language, label, natural_rank, t
from pipelines.presentation.formats import PLOTLY_SEPARATORS, integer, interval, month, number, percent

BLUE, ORANGE, GREY, RED = "#1b6ca8", "#c45a10", "#9a9a9a", "#b3261e"
COHORT_COLOURS = {"care_managed": BLUE, "comparison": GREY}
Z95, Z998 = 1.959964, 3.090232


TITLE_WIDTH = 55
AXIS_WIDTH = 32
"""Characters per line of a chart's title and of a horizontal axis's title or note: charts are drawn two to a row
(about 480 px wide) and a horizontal axis title is centred on the plot, narrower still beside long labels."""


def wrap(text: str, width: int = 60) -> str:
    """Break a long title or axis title into lines (Plotly never wraps, and cuts what does not fit)."""
    return "<br>".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


AXIS_STYLE: dict[str, Any] = {"automargin": True, "showline": True, "linecolor": "#bbb", "gridcolor": "#eee",
                               "zeroline": False}  # fmt: skip
"""Every axis: margins that grow with its labels, a light line and grid, no zero line unless a figure draws one."""


def _titled(text: str) -> dict[str, Any]:
    return {"title": {"text": text}}


def _figure(
    traces: list[dict[str, Any]],
    language: Language,
    title: str,
    height: int,
    axes: dict[str, dict[str, Any]] | None = None,
    margin: dict[str, int] | None = None,
    **layout: Any,
) -> go.Figure:
    """A figure in the house layout, built in one validation: a wrapped title, the language's separators, the
    legend above the plot, and every axis in ``axes`` (``xaxis``, ``yaxis``, ``xaxis2``...; the first pair when
    none is given) in the house style, its own settings on top."""
    lines = wrap(title, TITLE_WIDTH)
    top = 40 + 22 * lines.count("<br>") + 40
    axes = axes if axes is not None else {}
    styled = {name: {**AXIS_STYLE, **settings} for name, settings in {"xaxis": {}, "yaxis": {}, **axes}.items()}
    spec: dict[str, Any] = {
        "title": {"text": lines, "x": 0, "xanchor": "left", "y": 1, "yanchor": "top", "pad": {"t": 14},
                  "font": {"size": 16}},
        "separators": PLOTLY_SEPARATORS[language],
        "height": height,
        "margin": {"t": top, "b": 10, "l": 10, "r": 10, **(margin or {})},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        "font": {"family": "DejaVu Sans, Arial, sans-serif", "size": 12},
        "plot_bgcolor": "white",
        **styled,
        **layout,
    }  # fmt: skip
    return go.Figure(data=traces, layout=spec)


def _hline(y: float, **line: Any) -> dict[str, Any]:
    """A horizontal line across the plot at ``y`` (what ``add_hline`` draws)."""
    return {"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y, "line": line}


def _vline(x: float, **line: Any) -> dict[str, Any]:
    """A vertical line across the plot at ``x`` (what ``add_vline`` draws)."""
    return {"type": "line", "xref": "x", "x0": x, "x1": x, "yref": "y domain", "y0": 0, "y1": 1, "line": line}


def empty(message: str, language: Language, title: str = "") -> go.Figure:
    note = {"text": wrap(message, 80), "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}
    hidden = {"visible": False}
    return _figure([], language, title, 220, {"xaxis": hidden, "yaxis": hidden}, annotations=[note])


def hospitalisation_rates_chart(rates: pl.DataFrame, language: Language) -> go.Figure:
    """Unplanned admissions per 1,000 person-years by period, one bar per cohort, 95% intervals."""
    traces = []
    for cohort in ("care_managed", "comparison"):
        rows = rates.filter(pl.col("cohort") == cohort)
        rows = rows.sort(pl.col("period").map_elements(lambda p: natural_rank("period", p), return_dtype=pl.Int64))
        if rows.is_empty():
            continue
        rate = rows["unplanned_rate_per_1000py"]
        traces.append(
            {
                "type": "bar",
                "name": label("cohort", cohort, language),
                "x": [label("period", p, language) for p in rows["period"]],
                "y": rate.to_list(),
                "marker": {"color": COHORT_COLOURS[cohort]},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "color": "#333",
                    "array": (rows["unplanned_rate_ci_high"] - rate).to_list(),
                    "arrayminus": (rate - rows["unplanned_rate_ci_low"]).to_list(),
                },
                "hovertemplate": "%{x}<br>%{y:,.0f}<extra>%{fullData.name}</extra>",
            }
        )
    axes = {
        "xaxis": _titled(t("figure.rates.x", language)),
        "yaxis": {**_titled(wrap(t("figure.rates.y", language), 40)), "rangemode": "tozero"},
    }
    return _figure(traces, language, t("figure.rates.title", language), 420, axes, barmode="group")


def forest_range(estimates: list[float], main: tuple[float, float] | None) -> tuple[float, float]:
    """The forest plot's axis: zero, every estimate and the whole study's interval, with a margin; subgroup
    intervals wider than this are cut at its edge (with an arrow) instead of stretching it."""
    points = [0.0, *estimates, *(main or ())]
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return low - 0.25 * span, high + 0.25 * span


def subgroup_name(dimension: str, value: str, language: Language) -> str:
    """« Âge : moins de 60 ans »; a level whose words already name its group (« GIR 1-2 ») stands alone rather
    than as « GIR : GIR 1-2 »."""
    group = label("subgroup_dimension", dimension, language)
    level = label(dimension, value, language)
    if level.casefold().startswith(group.casefold()):
        return level
    return f"{group} : {level}" if language == "fr" else f"{group}: {level}"


def forest_plot(rows: pl.DataFrame, unit: str, language: Language, calibrated: bool = False) -> go.Figure:
    """Effect and 95% interval per subgroup, the whole study first, groups and levels in their natural order.

    ``rows``: ``dimension``, ``dimension_value``, ``estimate``, ``ci_low``, ``ci_high`` and an optional ``mark``
    (a subgroup that fails its own checks). With ``calibrated`` the axis says the intervals drawn are the
    rows' own, uncalibrated ones (a subgroup's calibrated interval is not released to funders)."""
    title = t("figure.forest.title", language)
    if rows.is_empty():
        return empty(t("figure.forest.none", language), language, title)
    if "mark" not in rows.columns:
        rows = rows.with_columns(pl.lit("").alias("mark"))
    ordered = sorted(
        rows.iter_rows(named=True),
        key=lambda r: (
            natural_rank("subgroup_dimension", r["dimension"]),
            natural_rank(r["dimension"], r["dimension_value"]),
            str(r["dimension_value"]),
        ),
    )

    def name(r: dict[str, Any]) -> str:
        if r["dimension"] == "all":
            return label("subgroup_dimension", "all", language)
        return subgroup_name(r["dimension"], r["dimension_value"], language) + (" †" if r["mark"] else "")

    names = [name(r) for r in ordered]
    shown = [(n, r) for n, r in zip(names, ordered, strict=True) if r["estimate"] is not None]
    missing = [n for n, r in zip(names, ordered, strict=True) if r["estimate"] is None]
    main = next(
        ((r["ci_low"], r["ci_high"]) for _, r in shown if r["dimension"] == "all" and r["ci_low"] is not None), None
    )
    low, high = forest_range([r["estimate"] for _, r in shown], main)
    traces: list[dict[str, Any]] = []
    for n, r in shown:
        lo, hi = r["ci_low"], r["ci_high"]
        whole = r["dimension"] == "all"
        colour = BLUE if whole else ("#7aa6c8" if not r["mark"] else GREY)
        if lo is not None and hi is not None:
            traces.append(
                {
                    "type": "scatter",
                    "x": [max(lo, low), min(hi, high)],
                    "y": [n, n],
                    "mode": "lines",
                    "showlegend": False,
                    "line": {"color": colour, "width": 3 if whole else 2},
                    "hoverinfo": "skip",
                }
            )
            for edge, cut, symbol in ((low, lo < low, "triangle-left"), (high, hi > high, "triangle-right")):
                if cut:
                    traces.append(
                        {
                            "type": "scatter",
                            "x": [edge],
                            "y": [n],
                            "mode": "markers",
                            "showlegend": False,
                            "hoverinfo": "skip",
                            "marker": {"symbol": symbol, "size": 12, "color": colour},
                            "name": "cut",
                        }
                    )
        traces.append(
            {
                "type": "scatter",
                "x": [r["estimate"]],
                "y": [n],
                "mode": "markers",
                "showlegend": False,
                "marker": {"size": 13 if whole else 10, "color": colour, "symbol": "diamond" if whole else "square"},
                "hovertext": [f"{n}: {number(r['estimate'], 1, language)} ({interval(lo, hi, 1, language)})"],
                "hoverinfo": "text",
            }
        )
    axis = t("figure.forest.x", language, unit=unit)
    if calibrated:
        axis += " · " + t("figure.forest.uncalibrated", language)
    notes = [t("figure.forest.dagger", language)] if any(r["mark"] for _, r in shown) else []
    if missing:
        notes.append(t("figure.forest.missing", language, levels=", ".join(missing)))
    # The notes go under the axis title, in it: the margin grows with both, so neither covers the other.
    note = "".join(f"<br><i>{wrap(n, AXIS_WIDTH + 5)}</i>" for n in notes)
    axes = {
        "xaxis": {**_titled(wrap(axis, AXIS_WIDTH) + note), "range": [low, high]},
        "yaxis": {"categoryorder": "array", "categoryarray": names, "autorange": "reversed", "type": "category",
                  "showgrid": False},
    }  # fmt: skip
    height = 140 + 34 * len(names) + 16 * note.count("<br>")
    return _figure(traces, language, title, height, axes, shapes=[_vline(0, color="#444", width=1.5)])


def incidence_chart(curves: pl.DataFrame, language: Language) -> go.Figure:
    """Cumulative incidence of a first unplanned admission with 95% bands, death competing."""
    title = t("figure.incidence.title", language)
    if curves.is_empty():
        return empty(t("figure.incidence.none", language), language, title)
    traces: list[dict[str, Any]] = []
    colours = {"care_managed": BLUE, "comparison_weighted": ORANGE}
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
        traces.append(
            {
                "type": "scatter",
                "x": rows["day"].to_list() + rows["day"].reverse().to_list(),
                "y": (rows["ci_high"] * 100).to_list() + (rows["ci_low"] * 100).reverse().to_list(),
                "fill": "toself",
                "line": {"width": 0},
                "fillcolor": colour,
                "opacity": 0.15,
                "hoverinfo": "skip",
                "showlegend": False,
            }
        )
        traces.append(
            {
                "type": "scatter",
                "x": rows["day"].to_list(),
                "y": (rows["cumulative_incidence"] * 100).to_list(),
                "mode": "lines",
                "line": {"color": colour, "shape": "hv"},
                "name": label("curve", curve, language),
                "hovertemplate": "%{x}: %{y:.1f} %<extra>%{fullData.name}</extra>",
            }
        )
    axes = {
        "xaxis": {**_titled(wrap(t("figure.incidence.x", language), AXIS_WIDTH)), "rangemode": "tozero"},
        "yaxis": {**_titled(wrap(t("figure.incidence.y", language), 40)), "rangemode": "tozero"},
    }
    return _figure(traces, language, title, 420, axes)


def balance_plot(diagnostics: dict[str, Any], language: Language) -> go.Figure:
    """Standardised mean differences before and after adjustment (a 'love plot'), with the 0.1 limit."""
    title = t("figure.balance.title", language)
    covariates = list(diagnostics.get("covariates") or [])
    before = list(diagnostics.get("smd_before") or [])
    after = list(diagnostics.get("smd_after") or [])
    if not covariates or len(before) != len(covariates) or len(after) != len(covariates):
        return empty(t("figure.balance.none", language), language, title)
    names = [label("covariate", c, language) for c in covariates]
    traces = [
        {
            "type": "scatter",
            "x": [None if v is None else abs(v) for v in values],
            "y": names,
            "mode": "markers",
            "name": t(key, language),
            "marker": {"color": colour, "size": 9, "symbol": symbol},
            "hovertemplate": "%{y}: %{x:.3f}<extra></extra>",
        }
        for values, key, colour, symbol in (
            (before, "figure.balance.before", GREY, "circle"),
            (after, "figure.balance.after", BLUE, "diamond"),
        )
    ]
    axes = {
        "xaxis": {**_titled(wrap(t("figure.balance.x", language), AXIS_WIDTH)), "rangemode": "tozero"},
        "yaxis": {**_titled(t("figure.balance.y", language)), "autorange": "reversed", "type": "category"},
    }
    limit = _vline(0.1, dash="dash", color=RED)
    return _figure(traces, language, title, 150 + 26 * len(covariates), axes, shapes=[limit])


def overlap_plot(diagnostics: dict[str, Any], language: Language) -> go.Figure:
    """Propensity-score distributions of both arms (binned; bins under 11 are blank outside the federation)."""
    title = t("figure.overlap.title", language)
    histogram = diagnostics.get("propensity_histogram") or {}
    if not isinstance(histogram, dict) or not histogram:
        return empty(t("figure.overlap.none", language), language, title)
    bins = len(next(iter(histogram.values())))
    centres = [(i + 0.5) / bins for i in range(bins)]
    traces = []
    for arm, colour in (("treated", BLUE), ("control", ORANGE)):
        counts = histogram.get(arm, [])
        total = sum(c for c in counts if c) or 1
        traces.append(
            {
                "type": "bar",
                "x": centres,
                "y": [None if c is None else 100 * c / total for c in counts],
                "name": label("arm", arm, language),
                "marker": {"color": colour},
                "opacity": 0.6,
                "width": 1 / bins,
                "hovertemplate": "%{x:.2f}: %{y:.1f} %<extra></extra>",
            }
        )
    axes = {
        "xaxis": {**_titled(wrap(t("figure.overlap.x", language), AXIS_WIDTH)), "range": [0, 1]},
        "yaxis": {**_titled(t("figure.overlap.y", language)), "rangemode": "tozero"},
    }
    return _figure(traces, language, title, 360, axes, barmode="overlay")


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


def territory_map(rows: pl.DataFrame, geojson: dict[str, Any], value: str, title: str, language: Language) -> go.Figure:
    """A choropleth drawn as filled outlines on plain axes: no map tiles, no base layer, nothing fetched.

    ``rows`` hold one area each (``dimension_value`` matching the outlines' ``code``, ``label``, ``value`` and,
    when present, ``unplanned_rate_ci_low``/``_high``); areas without a value are grey."""
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
    traces: list[dict[str, Any]] = []
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
            colour, text = MAP_GREY, t("figure.map.not_shown", language, area=name)
        else:
            colour = sample_colorscale("Blues", [0.15 + 0.85 * (amount - low) / span])[0]
            interval_ = bounds.get(code)
            text = (
                f"{name} : {integer(amount, language)}" if language == "fr" else f"{name}: {integer(amount, language)}"
            )
            if interval_ and None not in interval_:
                text += f" ({interval(interval_[0], interval_[1], 0, language)})"
        traces.append(
            {
                "type": "scatter",
                "x": x,
                "y": y,
                "fill": "toself",
                "fillcolor": colour,
                "mode": "lines",
                "line": {"color": "white", "width": 0.6},
                "hoveron": "fills",
                "text": text,
                "hoverinfo": "text",
                "showlegend": False,
                "name": code,
            }
        )
    traces.append(
        {
            "type": "scatter",
            "x": [None],
            "y": [None],
            "mode": "markers",
            "showlegend": False,
            "hoverinfo": "skip",
            "marker": {
                "colorscale": [[0, sample_colorscale("Blues", [0.15])[0]], [1, sample_colorscale("Blues", [1.0])[0]]],
                "cmin": low,
                "cmax": high,
                "color": [low],
                "showscale": bool(shown),
                "colorbar": {"title": {"text": wrap(t("figure.map.scale", language), 18)}},
            },
        }
    )
    axes = {"xaxis": {"visible": False}, "yaxis": {"visible": False, "scaleanchor": "x", "scaleratio": MAP_ASPECT}}
    # No legend (every area says its own value; the colour scale is a colour bar).
    return _figure(traces, language, title, 600, axes, margin={"l": 0, "r": 0}, legend=None)


# --- funnel plots: an agency against its anonymous peers ------------------------------------------------


def poisson_ratio_limits(expected: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Control limits of observed/expected around 1 for ``expected`` events: exact Poisson (chi-square) limits,
    so the lower one never goes below 0 (the normal approximation 1 - z/sqrt(E) did, for small E)."""
    alpha = 2 * stats.norm.sf(z)
    low = stats.chi2.ppf(alpha / 2, 2 * expected) / (2 * expected)
    high = stats.chi2.ppf(1 - alpha / 2, 2 * (expected + 1)) / (2 * expected)
    return np.nan_to_num(low, nan=0.0), high


def proportion_limits(target: float, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Control limits of a share around ``target`` for ``n`` cases: Wilson score limits, always within [0, 1]."""
    p = min(max(target, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def funnel_plot(
    own: pl.DataFrame,
    peers: pl.DataFrame,
    own_label: str,
    language: Language,
    kind: str = "ratio",
    target: float = 1.0,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
) -> go.Figure:
    """An agency (a star) and its anonymous peers (grey) against a precision axis, with 95% and 99.8% limits.

    ``own`` and ``peers`` hold ``n`` (expected events for ``ratio``, cases for ``share``) and ``value``
    (observed/expected, or the share); peers also ``peer`` (anonymous labels). Limits come from
    ``poisson_ratio_limits`` or ``proportion_limits``, so they stay within the measure's range."""
    title = title or t("figure.funnel.title", language)
    n_all = pl.concat([own["n"], peers["n"]]).drop_nulls().cast(pl.Float64).to_numpy()
    n_all = n_all[n_all > 0]
    if n_all.size == 0:
        return empty(t("figure.funnel.none", language), language, title)
    grid = np.linspace(max(1.0, n_all.min() * 0.5), n_all.max() * 1.2, 200)
    traces: list[dict[str, Any]] = []
    for z, dash, key in ((Z95, "dash", "figure.funnel.limits95"), (Z998, "dot", "figure.funnel.limits998")):
        low, high = poisson_ratio_limits(grid, z) if kind == "ratio" else proportion_limits(target, grid, z)
        for i, limit in enumerate((high, low)):
            traces.append(
                {
                    "type": "scatter",
                    "x": grid,
                    "y": limit,
                    "mode": "lines",
                    "line": {"color": "#888", "dash": dash},
                    "name": t(key, language),
                    "showlegend": i == 0,
                    "hoverinfo": "skip",
                    "legendgroup": key,
                }
            )
    fmt = (lambda v: number(v, 2, language)) if kind == "ratio" else (lambda v: percent(v, 0, language))
    if peers.height:
        traces.append(
            {
                "type": "scatter",
                "x": peers["n"].to_list(),
                "y": peers["value"].to_list(),
                "mode": "markers",
                "name": t("figure.funnel.peers", language),
                "marker": {"color": GREY, "size": 9},
                "hovertext": [
                    f"{p}: {fmt(v)}" if v is not None else p for p, v in zip(peers["peer"], peers["value"], strict=True)
                ],
                "hoverinfo": "text",
            }
        )
    traces.append(
        {
            "type": "scatter",
            "x": own["n"].to_list(),
            "y": own["value"].to_list(),
            "mode": "markers",
            "name": own_label,
            "marker": {"color": ORANGE, "size": 15, "symbol": "star"},
            "hovertext": [f"{own_label}: {fmt(v)}" if v is not None else own_label for v in own["value"]],
            "hoverinfo": "text",
        }
    )
    share = {"range": [0, 1.02], "tickformat": ".0%"} if kind == "share" else {}
    axes = {
        "xaxis": {**_titled(wrap(x_title or t("figure.funnel.x", language), 60)), "rangemode": "tozero"},
        "yaxis": {**_titled(wrap(y_title or t("figure.funnel.y", language), 40)), "rangemode": "tozero", **share},
    }
    return _figure(traces, language, title, 440, axes, shapes=[_hline(target, color="#444")])


def caseload_chart(caseload: pl.DataFrame, language: Language) -> go.Figure:
    """Active care-managed cases (whole counts) and cases per full-time care manager, by month: two panels
    sharing the months, each with its own axis from zero (one chart with two y axes read as one scale)."""
    title = t("figure.caseload.title", language)
    if caseload.is_empty():
        return empty(t("figure.caseload.none", language), language, title)
    months: list[date] = caseload["month_start"].to_list()
    active, per_fte = t("figure.caseload.active", language), t("figure.caseload.per_fte", language)
    traces = [
        {
            "type": "bar",
            "x": months,
            "y": caseload["active_episodes"].to_list(),
            "marker": {"color": "#7aa6c8"},
            "xaxis": "x",
            "yaxis": "y",
            "name": active,
            "showlegend": False,
            "hovertext": [
                f"{month(m, language)}: {integer(v, language)}"
                for m, v in zip(months, caseload["active_episodes"].to_list(), strict=True)
            ],
            "hoverinfo": "text",
        },
        {
            "type": "scatter",
            "x": months,
            "y": caseload["episodes_per_fte"].to_list(),
            "mode": "lines+markers",
            "xaxis": "x2",
            "yaxis": "y2",
            "line": {"color": BLUE},
            "name": per_fte,
            "showlegend": False,
            "hovertext": [
                f"{month(m, language)}: {number(v, 1, language)}"
                for m, v in zip(months, caseload["episodes_per_fte"].to_list(), strict=True)
            ],
            "hoverinfo": "text",
        },
    ]
    ticks = months[:: max(1, len(months) // 8)]
    months_axis = {"tickvals": ticks, "ticktext": [month(m, language) for m in ticks], "domain": [0.0, 1.0]}
    # Two panels sharing the months (what ``make_subplots(rows=2, shared_xaxes=True)`` lays out), written out:
    # the upper one's months follow the lower one's and only the lower one labels them.
    axes = {
        "xaxis": {**months_axis, "anchor": "y", "matches": "x2", "showticklabels": False},
        "yaxis": {**_titled(t("figure.caseload.cases", language)), "anchor": "x", "domain": [0.56, 1.0],
                  "rangemode": "tozero", "tickformat": ",d"},
        "xaxis2": {**months_axis, **_titled(t("figure.caseload.x", language)), "anchor": "y2"},
        "yaxis2": {**_titled(t("figure.caseload.per_fte_axis", language)), "anchor": "x2", "domain": [0.0, 0.44],
                   "rangemode": "tozero"},
    }  # fmt: skip
    panel_titles = [
        {"text": text, "font": {"size": 16}, "showarrow": False, "x": 0.5, "xanchor": "center", "xref": "paper",
         "y": y, "yanchor": "bottom", "yref": "paper"}
        for text, y in ((active, 1.0), (per_fte, 0.44))
    ]  # fmt: skip
    return _figure(traces, language, title, 520, axes, annotations=panel_titles)


def share_bars(rows: pl.DataFrame, kind: str, title: str, language: Language) -> go.Figure:
    """Episodes by category (referral source or payer) as horizontal bars, labelled, whole counts, largest first."""
    rows = rows.filter(pl.col("episodes").is_not_null()).sort("episodes", descending=True)
    if rows.is_empty():
        return empty(t("figure.shares.none", language), language, title)
    names = [label(kind, v, language) for v in rows["dimension_value"]]
    bars = {
        "type": "bar",
        "x": rows["episodes"].to_list(),
        "y": names,
        "orientation": "h",
        "marker": {"color": BLUE},
        "text": [integer(v, language) for v in rows["episodes"]],
        "textposition": "auto",
        "hovertext": [f"{n}: {integer(v, language)}" for n, v in zip(names, rows["episodes"], strict=True)],
        "hoverinfo": "text",
    }
    axes = {
        "xaxis": {**_titled(t("figure.shares.x", language)), "rangemode": "tozero", "tickformat": ",d"},
        "yaxis": {**_titled(label("dimension", kind, language).capitalize()), "autorange": "reversed",
                  "type": "category"},
    }  # fmt: skip
    return _figure([bars], language, title, 140 + 30 * rows.height, axes)
