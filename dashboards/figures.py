"""Plotly figures as pure functions of tables: no Streamlit, no database."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

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
