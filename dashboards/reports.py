"""Reports worth sending: a study as self-contained HTML for A4 (and a PDF printed from it), and its rows as CSV.

The report says what the study page says, in the same order, from the same content
(``dashboards/study_content.py``): the verdict, the effect, the money, the checks, negative controls and
E-values, the charts, the method and limits, and the release it comes from (study version, data cut-off,
run). It is laid out for A4 (CSS ``@page``), charts drawn at the printable width and never split across
pages (``break-inside: avoid``); Plotly is inlined, nothing is fetched.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import jinja2
import plotly.graph_objects as go
import polars as pl

from dashboards.exports import Col, export_table
from dashboards.study_content import StudyContent
from pipelines.impact.gate import Verdict
from pipelines.presentation.catalogue import Language, label, natural_rank, t
from pipelines.presentation.verdict import render, subgroup_marker, unit

TEMPLATES = Path(__file__).with_name("templates")
A4_FIGURE_WIDTH = 660
"""Pixels: the printable width of A4 with 14 mm margins (182 mm at 96 dpi is 688 px), less a little."""


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )


def _for_print(figure: go.Figure) -> go.Figure:
    printed = go.Figure(figure)
    printed.update_layout(width=A4_FIGURE_WIDTH, autosize=False)
    return printed


def study_report_html(content: StudyContent, figures: dict[str, go.Figure], language: Language = "fr") -> str:
    """One self-contained HTML page laid out for A4."""
    bodies = [
        _for_print(f).to_html(
            full_html=False, include_plotlyjs=(i == 0), config={"displayModeBar": False, "staticPlot": True}
        )
        for i, f in enumerate(figures.values())
    ]
    words = {
        key: t(f"study.section.{key}", language)
        for key in ("effect", "money", "carers", "evidence", "checks", "controls", "figures", "method")
    }
    words["no_controls"] = t("controls.none", language)
    words["plan"] = t("plan.title", language)
    template = _environment().get_template("study_report.html.j2")
    return template.render(c=content, figures=bodies, t=words, lang=language)


STUDY_CSV = (
    Col("study", "column.study"),
    Col("role", "column.role", "code:role"),
    Col("dimension", "column.dimension", "code:dimension"),
    Col("dimension_value", "column.dimension_value"),
    Col("outcome", "column.outcome", "code:outcome"),
    Col("n_treated", "column.n_treated", "int"),
    Col("n_comparison", "column.n_comparison", "int"),
    Col("estimate", "column.estimate", "num1"),
    Col("ci_low", "column.ci_low", "num1"),
    Col("ci_high", "column.ci_high", "num1"),
    Col("unit", "column.unit"),
    Col("design", "column.design", "code:design"),
    Col("estimand", "column.estimand", "code:estimand"),
    Col("study_version", "column.study_version"),
)


ROLE_ORDER = ("main", "placebo", "negative_control", "subgroup")
"""The order of a study's rows in its CSV, as on the page: the study, its controls, then its subgroups."""


def in_reading_order(rows: pl.DataFrame) -> pl.DataFrame:
    """The study first, then placebo and negative controls, then subgroups by group and level in natural order
    (« moins de 60 ans » first)."""
    if not {"role", "dimension", "dimension_value"} <= set(rows.columns):
        return rows
    ranks = [
        (
            ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER),
            natural_rank("subgroup_dimension", d),
            natural_rank(str(d), v),
        )
        for r, d, v in zip(rows["role"], rows["dimension"], rows["dimension_value"], strict=True)
    ]
    order = sorted(range(rows.height), key=lambda i: ranks[i])
    return rows[order]


def _published(verdicts: list[Verdict], roles: list[str], key: str) -> pl.Series:
    """The study's published number (calibrated on the negative controls when the study is) on its main row:
    the one its verdict states, which the row's own, uncalibrated estimate may differ from."""
    values = [
        v.numbers.get(key) if r == "main" and isinstance(v.numbers.get(key), int | float) else None
        for v, r in zip(verdicts, roles, strict=True)
    ]
    return pl.Series(values, dtype=pl.Float64).round(1)


def study_csv_rows(rows: pl.DataFrame, language: Language = "fr") -> pl.DataFrame:
    """A study's rows for CSV: headers and codes in words, the verdict in words (never its JSON), the published
    (calibrated) effect beside the main row's own, and each subgroup that fails its own checks marked. The rows
    keep their order (``in_reading_order`` puts them in the page's)."""
    verdicts = [Verdict.from_json(v) for v in rows["verdict"]]
    roles = rows["role"].to_list()
    if "unit" in rows.columns:  # the engine's unit, in the reader's words
        rows = rows.with_columns(
            pl.Series("unit", [unit(str(u or ""), language) for u in rows["unit"]], dtype=pl.String)
        )
    if {"dimension", "dimension_value"} <= set(rows.columns):  # a subgroup's level in words (« moins de 60 ans »)
        levels = [
            None
            if v is None
            else label("subgroup_dimension", "all", language)
            if d == "all"
            else label(str(d), v, language)
            for d, v in zip(rows["dimension"], rows["dimension_value"], strict=True)
        ]
        rows = rows.with_columns(pl.Series("dimension_value", levels, dtype=pl.String))
    table = export_table(rows, [c for c in STUDY_CSV if c.name in rows.columns], language)
    return table.with_columns(
        _published(verdicts, roles, "estimate").alias(t("column.published_estimate", language)),
        _published(verdicts, roles, "ci_low").alias(t("column.published_ci_low", language)),
        _published(verdicts, roles, "ci_high").alias(t("column.published_ci_high", language)),
        pl.Series(t("column.verdict", language), [render(v, language) for v in verdicts], dtype=pl.String),
        pl.Series(
            t("column.subgroup_mark", language),
            [subgroup_marker(v, language) if r == "subgroup" else "" for v, r in zip(verdicts, roles, strict=True)],
            dtype=pl.String,
        ),
    )


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def html_to_pdf(page: str, timeout: float = 90.0) -> bytes:
    """Print HTML to PDF with Debian's headless chromium; the page's CSS sets A4 (``@page``)."""
    browser = chromium_path()
    if browser is None:
        raise RuntimeError("PDF export needs Debian's chromium (`make browser` installs it)")
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "report.html", Path(folder) / "report.pdf"
        source.write_text(page, encoding="utf-8")
        subprocess.run(  # noqa: S603 (the path comes from shutil.which, the arguments are ours)
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--no-pdf-header-footer",
                "--virtual-time-budget=10000",
                f"--user-data-dir={folder}/profile",
                f"--print-to-pdf={target}",
                source.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        return target.read_bytes()
