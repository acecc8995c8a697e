"""Exports: a study report as self-contained HTML and PDF, and CSV with formula-like cells neutralised.

The report is built from the same scoped, disclosure-controlled tables as the study page
(the caller passes them in), so an export never shows more than the page.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from pipelines.impact.gate import Verdict
from pipelines.impact.messages import (
    Language,
    check_rows,
    headline,
    interval_label,
    published_effect,
    render,
    status,
    subgroup_marker,
    text,
)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pl.DataFrame) -> bytes:
    """CSV in UTF-8 with BOM (Excel reads it), text cells that a spreadsheet would run as formulas prefixed with '."""
    text_columns = [c for c, t in frame.schema.items() if t == pl.String]
    neutralised = (
        frame.with_columns(
            pl.when(pl.any_horizontal(pl.col(c).str.starts_with(p) for p in FORMULA_PREFIXES))
            .then(pl.lit("'") + pl.col(c))
            .otherwise(pl.col(c))
            .alias(c)
            for c in text_columns
        )
        if text_columns
        else frame
    )
    return "\ufeff".encode() + neutralised.write_csv().encode("utf-8")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "suppressed"
    return f"{value:,.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def study_csv_rows(rows: pl.DataFrame, language: Language = "fr") -> pl.DataFrame:
    """A study's rows for CSV: the verdict rendered in words (``verdict_text``) instead of its JSON, and
    each subgroup that fails its own checks marked (``subgroup_mark``)."""
    verdicts = [Verdict.from_json(v) for v in rows["verdict"]]
    roles = rows["role"].to_list()
    return rows.drop("diagnostics", "funder_figures", "verdict").with_columns(
        pl.Series("verdict_text", [render(v, language) for v in verdicts]),
        pl.Series(
            "subgroup_mark",
            [subgroup_marker(v, language) if r == "subgroup" else "" for v, r in zip(verdicts, roles, strict=True)],
        ),
    )


def study_report_html(
    main: dict[str, Any],
    figures: dict[str, go.Figure],
    funder_figures: dict[str, Any],
    published_at: str,
    language: Language = "fr",
) -> str:
    """One self-contained HTML page: the verdict, interval, checks, method and limits, and the figures (Plotly
    inline). Whether the study is publishable, and why not, is rendered from its stored verdict only."""
    verdict = Verdict.from_json(main["verdict"])
    # The published estimate and interval are the verdict's (calibrated when the study is); the row's own
    # columns are the uncalibrated ones, shown beside them.
    rows = [
        ("Verdict", html.escape(f"{status(verdict, language)} {headline(verdict, language)}")),
        (
            "Effect, 95% interval (" + html.escape(interval_label(verdict, language)) + ")",
            html.escape(published_effect(verdict, language)),
        ),
    ]
    if verdict.numbers.get("calibrated"):
        rows.append(
            (
                "Effect, 95% interval (" + html.escape(text("interval.uncalibrated", language)) + ")",
                f"{_fmt(main.get('estimate'))} ({_fmt(main.get('ci_low'))} to {_fmt(main.get('ci_high'))}) "
                f"{html.escape(str(main.get('unit', '')))}",
            )
        )
    rows += [
        ("Design / estimand", f"{html.escape(str(main.get('design')))} / {html.escape(str(main.get('estimand')))}"),
        ("Interval method", html.escape(str(main.get("variance_method", "")))),
        (
            "Episodes (care-managed / comparison)",
            f"{_fmt(main.get('n_treated'), 0)} / {_fmt(main.get('n_comparison'), 0)}",
        ),
    ]
    if funder_figures.get("avoided_unplanned_hospitalisations") is not None:
        low, high = funder_figures["avoided_ci"]
        avoided = _fmt(funder_figures["avoided_unplanned_hospitalisations"])
        rows.append(("Avoided unplanned hospitalisations", f"{avoided} (95% interval {_fmt(low)} to {_fmt(high)})"))
        for name, scenario in funder_figures.get("scenarios", {}).items():
            rows.append(
                (
                    f"Net savings, {name} costs (€)",
                    f"{_fmt(scenario['net_savings'], 0)}; P(> 0) = {scenario['probability_net_savings_positive']:.0%}",
                )
            )
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    checks = "".join(
        "<tr>" + "".join(f"<td>{html.escape(value)}</td>" for value in row.values()) + "</tr>"
        for row in check_rows(verdict, language)
    )
    parts = []
    for i, (title, figure) in enumerate(figures.items()):
        body = figure.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displayModeBar": False})
        parts.append(f"<h2>{html.escape(title)}</h2>{body}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parcours study: {html.escape(str(main.get("study")))}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
th{{text-align:left;padding-right:1em;vertical-align:top}}td,th{{padding:.25em .5em;border-bottom:1px solid #ddd}}
.note{{background:#f4f6f8;padding:1em;border-left:4px solid #1b6ca8}}</style></head><body>
<h1>{html.escape(str(main.get("question", main.get("study"))))}</h1>
<p>Study <code>{html.escape(str(main.get("study")))}</code> version {html.escape(str(main.get("study_version")))}
· published {html.escape(published_at)}</p>
<table>{table}</table>
<h2>Checks</h2>
<table>{checks}</table>
<div class="note"><p><strong>Method and limits.</strong> Care-managed people are compared with similar people
who were not care-managed, adjusting for the covariates the study names; what was not recorded cannot be
adjusted for. The interval is a 95% interval. The verdict comes from the pre-set publication gate; the table
of checks above lists each one. Counts under 11 are suppressed.</p></div>
{"".join(parts)}
</body></html>"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def html_to_pdf(page: str, timeout: float = 90.0) -> bytes:
    """Print HTML to PDF with Debian's headless chromium (Plotly renders before printing)."""
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
