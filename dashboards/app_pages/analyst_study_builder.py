"""Study builder: take a study, change its outcome, covariates, design, population and cost assumptions, run it on
the analyst snapshot, read it in the same verdict-first layout as a published study, and export it."""

import subprocess

import polars as pl
import streamlit as st

from dashboards import builder, data_access
from dashboards.figures import balance_plot, forest_plot, overlap_plot
from dashboards.i18n import labeller, language, lb, tr
from dashboards.reports import html_to_pdf, in_reading_order, study_csv_rows, study_report_html
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from dashboards.study_content import question, study_content, subgroup_rows
from dashboards.study_view import show_study
from pipelines import warehouse
from pipelines.impact.study import load_studies, run_study
from pipelines.presentation.verdict import unit

PAGE = "study_builder"
RESULT_KEY = "builder_result"
viewer = page_viewer(PAGE, "analyst")
st.title(tr("nav.builder"))
meta = snapshot_or_stop()
specs = {s.name: s for s in load_studies()}
base = specs[
    st.selectbox(
        tr("builder.start_from"),
        list(specs),
        key="builder_base",
        format_func={
            name: question({"study": name, "question": spec.question}, language()) for name, spec in specs.items()
        }.__getitem__,
    )
]
stays, months = builder.default_costs()

outcome = st.selectbox(
    tr("builder.outcome"),
    builder.OUTCOMES,
    index=builder.OUTCOMES.index(base.outcome),
    format_func=labeller("outcome"),
    key=f"builder_outcome_{base.name}",
)
designs = builder.designs_for(outcome)
with st.form("builder"):
    design = st.selectbox(
        tr("builder.design"),
        designs,
        index=designs.index(base.design) if base.design in designs else 0,
        format_func=labeller("design"),
        help=tr("help.design"),
    )
    estimand = st.selectbox(
        tr("builder.estimand"),
        ["att", "ate"],
        index=["att", "ate"].index(base.estimand),
        format_func=labeller("estimand"),
        help=tr("help.estimand"),
    )
    chosen_covariates = st.multiselect(
        tr("builder.covariates"),
        builder.covariates(),
        default=base.covariates,
        format_func=labeller("covariate"),
    )
    ages = st.slider(tr("builder.ages"), 0, 110, (base.population.min_age, min(base.population.max_age, 110)))
    models = st.multiselect(
        tr("builder.models"),
        builder.AGENCY_MODELS,
        default=base.population.agency_models or list(builder.AGENCY_MODELS),
        format_func=labeller("agency_model"),
    )
    follow_up = st.number_input(tr("builder.follow_up"), 30, 1095, base.follow_up_days, step=30)
    resamples = st.select_slider(tr("builder.resamples"), [100, 200, 500, 1000], value=200)
    cost_inputs: dict[str, dict[str, float]] = {"stay": {}, "month": {}}
    if outcome == "unplanned_admissions":
        st.markdown(f"**{tr('builder.costs')}**")
        cost_columns = st.columns(3)
        for column, scenario in zip(cost_columns, builder.SCENARIOS, strict=True):
            cost_inputs["stay"][scenario] = column.number_input(
                tr("builder.cost_stay", scenario=lb("scenario", scenario)),
                0.0,
                100_000.0,
                stays[scenario],
                step=100.0,
                format="%.0f",  # whole euros, as every amount is shown
            )
            cost_inputs["month"][scenario] = column.number_input(
                tr("builder.cost_month", scenario=lb("scenario", scenario)),
                0.0,
                5_000.0,
                months[scenario],
                step=5.0,
                format="%.0f",
            )
    submitted = st.form_submit_button(tr("builder.run"), type="primary")

if submitted:
    try:
        spec = builder.build_spec(
            base,
            builder.Choices(
                outcome=outcome,
                covariates=tuple(chosen_covariates),
                design=design,
                estimand=estimand,
                min_age=ages[0],
                max_age=ages[1],
                agency_models=tuple(models),
                follow_up_days=int(follow_up),
                resamples=int(resamples),
            ),
        )
    except ValueError as exc:
        # The study schema's reason names fields and allowed values, never a case value.
        st.error(tr("builder.refused", reason=str(exc).splitlines()[-1]))
        st.stop()
    with (
        st.spinner(tr("builder.running")),
        warehouse.connect(data_access.analyst_snapshot_path(viewer), read_only=True) as con,
    ):
        result = run_study(con, spec)
    if cost_inputs["stay"]:
        result = builder.with_costs(result, builder.cost_table(cost_inputs["stay"], cost_inputs["month"]))
    data_access.record(viewer, "study_run", PAGE, study=spec.name, design=design, outcome=outcome)
    st.session_state[RESULT_KEY] = builder.rows_and_diagnostics(result)
    st.session_state.pop("builder_pdf", None)  # a PDF of the previous run must not be offered for this one

if RESULT_KEY not in st.session_state:
    st.info(tr("builder.intro"))
    st.stop()
rows, diagnostics = st.session_state[RESULT_KEY]
content = study_content(rows, diagnostics, meta, language())
main = rows.filter(pl.col("role") == "main").row(0, named=True)
figures = {
    "forest": forest_plot(subgroup_rows(rows, language()), unit(str(main.get("unit") or ""), language()), language()),
    "balance": balance_plot(diagnostics, language()),
    "overlap": overlap_plot(diagnostics, language()),
}
show_study(content, figures, "builder")
st.subheader(tr("study.section.export"))
name = str(main["study"])
lang = language()


def report() -> str:
    return study_report_html(content, figures, lang)


exports = st.columns(3)
exports[0].download_button(
    tr("export.html"),
    report,  # written when clicked, not on every rerun
    file_name=f"parcours_builder_{name}.html",
    mime="text/html",
    on_click=lambda: data_access.record(viewer, "export", PAGE, format="html", study=name),
)
if exports[1].button(tr("export.prepare_pdf")):
    with st.spinner(tr("export.printing")):
        try:
            st.session_state["builder_pdf"] = html_to_pdf(report())
        except (RuntimeError, OSError, subprocess.SubprocessError):
            st.error(tr("export.pdf_failed"))
if st.session_state.get("builder_pdf"):
    exports[1].download_button(
        tr("export.pdf"),
        st.session_state["builder_pdf"],
        file_name=f"parcours_builder_{name}.pdf",
        mime="application/pdf",
        on_click=lambda: data_access.record(viewer, "export", PAGE, format="pdf", study=name),
    )
with exports[2]:
    csv_download(viewer, PAGE, study_csv_rows(in_reading_order(rows), language()), f"builder_{name}")
