"""The study report as it is sent: printed by Debian's chromium, every page A4, every word inside the printable
area (nothing clipped at an edge), and no chart split across two pages.

The PDF's words and their boxes are read back with poppler's ``pdftotext -bbox-layout`` (``make browser``
installs it with chromium): what a reader of the PDF sees, not what the HTML asked for.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboards import data_access
from dashboards.access import Viewer
from dashboards.cached import study_figures
from dashboards.reports import chromium_path, html_to_pdf, study_report_html
from dashboards.study_content import study_content
from pipelines.presentation.catalogue import Language, t
from tests.conftest import PipelineRun

pytestmark = pytest.mark.browser

PDFTOTEXT = shutil.which("pdftotext")
A4 = (595.0, 842.0)
"""Points (1/72 inch): 210 x 297 mm."""
MARGIN = 14 / 25.4 * 72
"""The report's side margins (``@page`` in ``dashboards/templates/study_report.html.j2``): 14 mm."""
XHTML = "{http://www.w3.org/1999/xhtml}"


@dataclass(frozen=True)
class Word:
    page: int
    text: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


def words_of(pdf: bytes, folder: Path) -> tuple[list[tuple[float, float]], list[Word]]:
    """Each page's size and every word with its box, as poppler reads them from the PDF."""
    source, target = folder / "report.pdf", folder / "report.html"
    source.write_bytes(pdf)
    subprocess.run([str(PDFTOTEXT), "-bbox-layout", str(source), str(target)], check=True, capture_output=True)
    root = ET.parse(target).getroot()  # noqa: S314 (poppler's output for our own PDF)
    sizes, words = [], []
    for number, page in enumerate(root.iter(f"{XHTML}page")):
        sizes.append((float(page.attrib["width"]), float(page.attrib["height"])))
        for w in page.iter(f"{XHTML}word"):
            box = (float(w.attrib[k]) for k in ("xMin", "yMin", "xMax", "yMax"))
            words.append(Word(number, w.text or "", *box))
    return sizes, words


def page_of(phrase: str, words: list[Word]) -> set[int]:
    """The pages where the phrase's words follow one another (a chart's title, an axis title)."""
    wanted = phrase.split()
    found = set()
    for i in range(len(words) - len(wanted) + 1):
        run = words[i : i + len(wanted)]
        if [w.text for w in run] == wanted and len({w.page for w in run}) == 1:
            found.add(run[0].page)
    return found


@pytest.mark.skipif(chromium_path() is None or PDFTOTEXT is None, reason="needs chromium and pdftotext (make browser)")
@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_study_report_prints_on_a4_with_nothing_clipped_and_no_chart_split(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, tmp_path: Path, language: Language
) -> None:
    monkeypatch.setenv("PARCOURS_SERVING", str(small_run.settings.serving_path))
    analyst = Viewer("analyst@demo.parcours.fr", "analyst")
    study = data_access.studies(analyst)["study"][0]  # the headline study: the one with every chart
    rows = data_access.study_detail(analyst, study)
    content = study_content(
        rows, data_access.study_diagnostics(analyst, study), data_access.snapshot_metadata(analyst), language
    )
    figures = study_figures(analyst, study, language)
    assert set(figures) >= {"forest", "balance", "overlap"}
    pdf = html_to_pdf(study_report_html(content, figures, language))

    boxes = {tuple(round(float(v)) for v in b.split()) for b in re.findall(rb"/MediaBox\s*\[([^\]]+)\]", pdf)}
    assert boxes == {(0, 0, 595, 842)}  # A4 (US Letter is 612 x 792)
    sizes, words = words_of(pdf, tmp_path)
    assert len(sizes) >= 2
    assert all(abs(w - A4[0]) < 1 and abs(h - A4[1]) < 1 for w, h in sizes)

    # Nothing outside the printable area: a label cut at a chart's or a table's edge would stick out of it.
    outside = [
        w for w in words if w.x_min < MARGIN - 2 or w.x_max > A4[0] - MARGIN + 2 or w.y_min < 0 or w.y_max > A4[1]
    ]
    assert not outside, outside[:5]

    # The verdict is said, in words, on the first page, before any chart.
    assert 0 in page_of(" ".join(content.verdict.split()[:6]), words)

    # Every chart whole on one page: its title and its horizontal axis's title on the same page.
    for title_key, axis_key in (
        ("figure.forest.title", "figure.forest.x"),
        ("figure.balance.title", "figure.balance.x"),
        ("figure.overlap.title", "figure.overlap.x"),
    ):
        title = " ".join(t(title_key, language).split()[:4])
        axis = " ".join(t(axis_key, language, unit="").split()[:3])  # its first words: the unit may wrap
        title_pages, axis_pages = page_of(title, words), page_of(axis, words)
        assert len(title_pages) == 1, (title, title_pages)
        assert title_pages == axis_pages, (title, title_pages, axis, axis_pages)

    # The forest plot's subgroup labels are printed whole (the PDF of the issue cut « 95 and over » to « nd: »).
    oldest = t("code.age_band.95 and over", language)
    assert page_of(oldest, words), oldest
