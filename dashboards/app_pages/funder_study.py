"""One impact study: headline figures with intervals, subgroups, curves, balance, overlap, method and exports."""

import json
import subprocess

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.figures import balance_plot, forest_plot, incidence_chart, overlap_plot
from dashboards.reports import html_to_pdf, study_csv_rows, study_report_html
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from pipelines.impact.gate import Verdict
from pipelines.impact.messages import (
    check_rows,
    headline,
    interval_label,
    published_effect,
    status,
    subgroup_marker,
    text,
)

PAGE = "study_detail"
viewer = page_viewer(PAGE, "funder", "analyst")
meta = snapshot_or_stop()
names = data_access.studies(viewer)["study"].to_list()
if not names:
    st.info("No study is publishable yet.")
    st.stop()
default = st.session_state.get("study")
study = st.selectbox("Study", names, index=names.index(default) if default in names else 0)
rows = data_access.study_detail(viewer, study)
main = rows.filter(pl.col("role") == "main").row(0, named=True)
funder = json.loads(main.get("funder_figures") or "{}")
diagnostics = data_access.study_diagnostics(viewer, study)
language = st.session_state.get("language", "fr")
verdict = Verdict.from_json(main["verdict"])
st.title(main["question"])
st.caption(
    f"Study {study} v{main['study_version']} · {main['design']} · estimand {main['estimand']} · "
    f"published {meta.get('published_at', '?')}"
)
# Every sentence about publication comes from the stored verdict (pipelines/impact/messages.py).
if verdict.publishable:
    st.success(status(verdict, language), icon="✅")
else:
    st.error(status(verdict, language))
st.markdown(f"**{headline(verdict, language)}**")


def _num(value: float | None, digits: int = 1) -> str:
    return "suppressed" if value is None else f"{value:,.{digits}f}"


cols = st.columns(4)
# The published effect and interval are the verdict's (calibrated when the study has negative controls, and
# withheld for funders where they would give back a count); the uncalibrated ones are the row's.
published = verdict.numbers
if published.get("estimate") is not None or main["estimate"] is not None:
    cols[0].metric(
        f"Effect ({main['unit']})",
        _num(published.get("estimate")),
        delta=f"95% CI {_num(published.get('ci_low'))} to {_num(published.get('ci_high'))}",
        delta_color="off",
        delta_arrow="off",
        help=f"{interval_label(verdict, language)}; {main['variance_method']}",
    )
    if published.get("calibrated"):
        st.caption(
            f"{text('interval.calibrated', language)}: {published_effect(verdict, language)} · "
            f"{text('interval.uncalibrated', language)}: {_num(main['estimate'])} "
            f"({_num(main['ci_low'])} to {_num(main['ci_high'])})"
        )
    cols[1].metric("Care-managed", _num(main["treated_value"]), help="Observed among care-managed people.")
    cols[2].metric(
        "Counterfactual",
        _num(main["counterfactual_value"]),
        help="What the comparison group says they would have had without care management.",
    )
cols[3].metric(
    "Episodes",
    f"{_num(main['n_treated'], 0)} / {_num(main['n_comparison'], 0)}",
    help="Care-managed / comparison episodes in the analysis.",
)

if "avoided_unplanned_hospitalisations" in funder:
    st.subheader("What it is worth")
    low, high = funder["avoided_ci"]
    money = st.columns(4)
    money[0].metric(
        "Avoided unplanned hospitalisations",
        _num(funder["avoided_unplanned_hospitalisations"]),
        delta=f"95% CI {_num(low)} to {_num(high)}",
        delta_color="off",
        delta_arrow="off",
    )
    for column, name in zip(money[1:], ("low", "central", "high"), strict=True):
        scenario = funder["scenarios"][name]
        net_low, net_high = scenario["net_savings_ci"]
        column.metric(
            f"Net savings, {name} costs",
            f"€{scenario['net_savings']:,.0f}",
            delta=f"95% CI €{net_low:,.0f} to €{net_high:,.0f}",
            delta_color="off",
            delta_arrow="off",
            help=f"€{scenario['cost_per_stay']:,.0f} per stay, €{scenario['care_management_per_month']:,.0f} "
            f"per person-month of care management. "
            f"Probability that net savings are positive: {scenario['probability_net_savings_positive']:.0%}.",
        )
    probabilities = {k: v["probability_net_savings_positive"] for k, v in funder["scenarios"].items()}
    st.caption(
        "Probability that net savings are positive: "
        + ", ".join(f"{k} costs {v:.0%}" for k, v in probabilities.items())
    )
if "treated_leaving_severe_band" in funder and funder["treated_leaving_severe_band"] is not None:
    st.subheader("Carers in the severe band")
    # A share is shown only on enough carers (the release hides it otherwise): never read a hidden share as 0%.
    comparison_share = funder.get("comparison_leaving_severe_band")
    against = (
        f"against {comparison_share:.0%} in the comparison group (not adjusted)"
        if comparison_share is not None
        else "while the comparison group has too few such carers to show a share"
    )
    st.write(
        f"Of carers in the severe Zarit band at enrolment, {funder['treated_leaving_severe_band']:.0%} of "
        f"care-managed people's left it within 12 months, {against}."
    )

figures = {}
subgroups = rows.filter(pl.col("role").is_in(["main", "subgroup"]))
# A subgroup that fails its own checks says so beside its name, wherever it is drawn.
marks = [
    subgroup_marker(Verdict.from_json(v), language) if r == "subgroup" else ""
    for v, r in zip(subgroups["verdict"], subgroups["role"], strict=True)
]
labels = [f"{d} ({m})" if m else d for d, m in zip(subgroups["dimension_value"], marks, strict=True)]
subgroups = subgroups.with_columns(pl.Series("dimension_value", labels))
figures["Effect by subgroup"] = forest_plot(subgroups, main["unit"], bool(published.get("calibrated")))
curves = data_access.study_curves(viewer, study)
if not curves.is_empty():
    figures["Cumulative incidence of a first unplanned admission"] = incidence_chart(curves)
figures["Covariate balance"] = balance_plot(diagnostics)
figures["Propensity overlap"] = overlap_plot(diagnostics)
left, right = st.columns(2)
for i, (title, figure) in enumerate(figures.items()):
    with left if i % 2 == 0 else right:
        st.subheader(title)
        st.plotly_chart(figure, width="stretch", key=f"figure_{i}")

negative = rows.filter(pl.col("role").is_in(["negative_control", "placebo"]))
with st.container(border=True):
    st.markdown("#### Method and limits, in plain words")
    st.markdown(
        "Care-managed people are compared with people who were not care-managed but looked alike on what the "
        f"agencies record ({', '.join(diagnostics.get('covariates', []))}). The comparison is only as good as that "
        "list: what was not recorded cannot be adjusted for. The **E-value** says how strong an unrecorded factor "
        f"would have to be to explain the result away: {_num(diagnostics.get('e_value'), 2)} for the estimate, "
        f"{_num(diagnostics.get('e_value_ci'), 2)} for the interval's limit nearest no effect. Intervals are 95% "
        f"intervals ({main['variance_method']}). Counts under 11 are suppressed."
    )
    if negative.height:
        st.markdown(
            "**Checks that should show no effect** (negative controls, placebo): "
            + "; ".join(
                f"{r['outcome']}: {_num(r['estimate'])} ({_num(r['ci_low'])} to {_num(r['ci_high'])})"
                + (f" ({r['reason']})" if r.get("reason") else "")
                for r in negative.iter_rows(named=True)
            )
        )
with st.expander("Diagnostics"):
    st.dataframe(pl.DataFrame(check_rows(verdict, language)), hide_index=True)
    # What the viewer's release holds (funders get no effective sample sizes nor equipoise share).
    shown_keys = ("effective_sample_size", "equipoise_share", "minimum_detectable_effect", "attrition",
                  "max_abs_smd_after", "design")  # fmt: skip
    st.json({k: diagnostics[k] for k in shown_keys if diagnostics.get(k) is not None})

st.subheader("Export")
report = study_report_html(main, figures, funder, meta.get("published_at", "?"), language)
exports = st.columns(3)
exports[0].download_button(
    "Report (HTML)",
    report,
    file_name=f"parcours_{study}.html",
    mime="text/html",
    on_click=lambda: data_access.record(viewer, "export", PAGE, format="html", study=study),
)
if exports[1].button("Prepare PDF"):
    with st.spinner("Printing the report with chromium…"):
        try:
            st.session_state[f"pdf_{study}"] = html_to_pdf(report)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            st.error(f"PDF export failed: {exc}")
if st.session_state.get(f"pdf_{study}"):
    exports[1].download_button(
        "Report (PDF)",
        st.session_state[f"pdf_{study}"],
        file_name=f"parcours_{study}.pdf",
        mime="application/pdf",
        on_click=lambda: data_access.record(viewer, "export", PAGE, format="pdf", study=study),
    )
with exports[2]:
    csv_download(viewer, PAGE, study_csv_rows(rows, language), f"study_{study}")
