"""Study builder: take a study, change its population, design or follow-up, run it, see its diagnostics."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.figures import balance_plot, forest_plot, overlap_plot
from dashboards.session import page_viewer, snapshot_or_stop
from pipelines import warehouse
from pipelines.impact.messages import check_rows, headline, status
from pipelines.impact.study import RATIO_OUTCOMES, load_studies, result_rows, run_study

PAGE = "study_builder"
viewer = page_viewer(PAGE, "analyst")
st.title("Study builder")
snapshot_or_stop()
specs = {s.name: s for s in load_studies()}
base = specs[st.selectbox("Start from", list(specs))]
designs = (
    ["dml", "ipw", "overlap", "aipw", "did"]
    if base.outcome in RATIO_OUTCOMES
    else ["dml", "match", "ipw", "overlap", "aipw"]
)
if base.outcome != "unplanned_admissions":
    designs = [d for d in designs if d != "did"]
with st.form("builder"):
    ages = st.slider("Age at enrolment", 0, 110, (base.population.min_age, min(base.population.max_age, 110)))
    models = st.multiselect(
        "Agency models",
        ["remote", "proximity", "integrated"],
        default=base.population.agency_models or ["remote", "proximity", "integrated"],
    )
    design = st.selectbox("Design", designs, index=designs.index(base.design) if base.design in designs else 0)
    follow_up = st.number_input("Follow-up (days)", 30, 1095, base.follow_up_days, step=30)
    resamples = st.select_slider("Bootstrap resamples", [100, 200, 500, 1000], value=200)
    submitted = st.form_submit_button("Run the study", type="primary")
if not submitted:
    st.info("Change the study's settings and run it. Results stay here: nothing is published.")
    st.stop()
try:
    spec = base.model_copy(
        update={
            "population": base.population.model_copy(
                update={"min_age": ages[0], "max_age": ages[1], "agency_models": models or None}
            ),
            "design": design,
            "follow_up_days": int(follow_up),
            "bootstrap": resamples,
            "subgroup_bootstrap": 100,
        }
    )
    spec = type(base).model_validate(spec.model_dump())
except ValueError as exc:
    st.error(str(exc))
    st.stop()
with (
    st.spinner(f"Running {spec.name} ({design}, {resamples} resamples)…"),
    warehouse.connect(data_access.analyst_snapshot_path(viewer), read_only=True) as con,
):
    result = run_study(con, spec)
data_access.record(viewer, "study_run", PAGE, study=spec.name, design=design)
rows = result_rows(result)
main = rows.filter(pl.col("role") == "main")
# The gate's verdict, in the words every output uses (pipelines/impact/messages.py).
language = st.session_state.get("language", "fr")
if result.verdict.publishable:
    st.success(status(result.verdict, language))
else:
    st.error(status(result.verdict, language))
st.markdown(headline(result.verdict, language))
st.dataframe(pl.DataFrame(check_rows(result.verdict, language)), hide_index=True, width="stretch")
if result.main is not None:
    st.metric(
        f"Effect ({result.main.unit})",
        f"{result.main.estimate:,.1f}",
        delta=f"95% CI {result.main.ci_low:,.1f} to {result.main.ci_high:,.1f}",
        delta_color="off",
        delta_arrow="off",
        help=result.main.variance,
    )
st.write(
    f"{result.n_treated:,} care-managed and {result.n_comparison:,} comparison episodes. Attrition: "
    + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in result.attrition.items())
)
if result.main is not None:
    st.plotly_chart(
        forest_plot(rows.filter(pl.col("role").is_in(["main", "subgroup"])), result.main.unit),
        width="stretch",
        key="forest",
    )
if result.diagnostics is not None:
    left, right = st.columns(2)
    left.plotly_chart(balance_plot(result.diagnostics.as_json()), width="stretch", key="balance")
    right.plotly_chart(overlap_plot(result.diagnostics.as_json()), width="stretch", key="overlap")
st.dataframe(main.drop("diagnostics", "verdict"), hide_index=True, width="stretch")
