"""The study layout every study is shown in (the funders' page and the analysts' study builder): the verdict
first, then the effect, the money, the evidence, the charts, the method and its limits."""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards.i18n import tr
from dashboards.study_content import Figure, StudyContent

VALUE = '<p style="font-size:1.6rem;font-weight:600;line-height:1.25;margin:0 0 0.25rem 0">{}</p>'
"""A headline number drawn whole: ``st.metric`` cuts a long value (an effect with its interval and unit) with an
ellipsis; this wraps it."""


def _metrics(figures: Sequence[Figure]) -> None:
    if not figures:
        return
    columns = st.columns(min(4, len(figures)))
    for i, figure in enumerate(figures):
        with columns[i % len(columns)]:
            st.markdown(f"**{figure.label}**", help=figure.help or None)
            st.markdown(VALUE.format(html.escape(figure.value)), unsafe_allow_html=True)
            if figure.detail:
                st.caption(figure.detail)


def show_study(content: StudyContent, figures: dict[str, go.Figure], key: str) -> None:
    """The study, verdict first. ``figures``: title -> chart (already titled), drawn two by two."""
    st.title(content.title)
    st.caption(content.provenance)
    with st.container(border=True):
        st.markdown(f"#### {tr('study.section.verdict')}")
        st.markdown(f"**{content.verdict}**")
        (st.info if content.publishable else st.error)(content.status)
    st.subheader(tr("study.section.effect"))
    _metrics(content.effect)
    if content.money:
        st.subheader(tr("study.section.money"))
        _metrics(content.money)
        st.dataframe(pl.DataFrame(content.money_table), hide_index=True, width="stretch")
    if content.carers:
        st.subheader(tr("study.section.carers"))
        st.write(content.carers)
    st.subheader(tr("study.section.evidence"))
    _metrics(content.evidence)
    st.markdown(f"##### {tr('study.section.checks')}")
    st.dataframe(pl.DataFrame(content.checks), hide_index=True, width="stretch")
    st.markdown(f"##### {tr('study.section.controls')}")
    if content.controls:
        st.dataframe(pl.DataFrame(content.controls), hide_index=True, width="stretch")
    else:
        st.caption(tr("controls.none"))
    st.subheader(tr("study.section.figures"))
    charts = list(figures.values())
    if "forest" in figures:  # the subgroups' labels are long: the forest plot gets the whole width
        st.plotly_chart(figures["forest"], width="stretch", key=f"{key}_figure_forest")
        charts = [f for name, f in figures.items() if name != "forest"]
    for start in range(0, len(charts), 2):
        columns = st.columns(2)
        for offset, figure in enumerate(charts[start : start + 2]):
            with columns[offset]:
                st.plotly_chart(figure, width="stretch", key=f"{key}_figure_{start + offset}")
    with st.container(border=True):
        st.markdown(f"#### {tr('study.section.method')}")
        for paragraph in content.method:
            st.markdown(paragraph)
    if content.plan:
        with st.container(border=True):
            st.markdown(f"#### {tr('plan.title')}")
            for line in content.plan:
                st.markdown(line)
