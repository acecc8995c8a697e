"""Server-side latency of the dashboards against a serving snapshot, with Streamlit's AppTest.

Two figures per interaction, as p50 and p95 over repeated runs:

* **query**: opening a short read-only connection to the snapshot and reading the table a page
  needs (uncached: what the first viewer after a new snapshot waits for);
* **rerun**: the whole script run the server does for one interaction (a page switch, or a
  changed selection), with the cache warm as it is in use.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import warehouse

APP = Path(__file__).resolve().parents[2] / "dashboards" / "streamlit_app.py"
USERS = {
    "funder": "funder@demo.parcours.fr",
    "agency": "agency@demo.parcours.fr",
    "analyst": "analyst@demo.parcours.fr",
}
REPEATS = 20


def _percentiles(samples: list[float]) -> dict[str, float]:
    millis = np.array(samples) * 1000
    return {"p50_ms": float(np.percentile(millis, 50)), "p95_ms": float(np.percentile(millis, 95)), "n": len(samples)}


def query_latency(serving: Path, repeats: int = REPEATS) -> dict[str, dict[str, float]]:
    with warehouse.connect(serving, read_only=True) as con:
        tables = [r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()]
    out = {}
    for table in sorted(tables):
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            with warehouse.connect(serving, read_only=True) as con:
                warehouse.query(con, f"select * from {warehouse.quote_identifier(table)}")
            samples.append(time.perf_counter() - started)
        out[table] = _percentiles(samples)
    return out


def _timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


PAGES = {
    "funder": ("funder_studies", "funder_study", "funder_overview", "funder_territories", "glossary"),
    "agency": ("agency_caseload", "agency_peers", "glossary"),
    "analyst": (
        "analyst_files",
        "analyst_agencies",
        "analyst_study_builder",
        "funder_studies",
        "funder_study",
        "funder_overview",
        "funder_territories",
        "agency_caseload",
        "agency_peers",
        "glossary",
    ),
}
"""Every page each role is given (``dashboards/streamlit_app.py``): analysts also open the funders' and agencies'
pages, on their own (true-valued) snapshot."""
LANGUAGES = ("fr", "en")


def rerun_latency(serving: Path, repeats: int = REPEATS) -> dict[str, dict[str, float]]:
    """Each role's every page in each language: opening it, and changing its first selection where it has one.

    AppTest reruns the whole script for a changed widget, even inside an ``st.fragment`` (where the browser
    reruns only the fragment): a selection's figure here is an upper bound of what a viewer waits for."""
    from streamlit.testing.v1 import AppTest

    os.environ["PARCOURS_SERVING"] = str(serving)
    os.environ["PARCOURS_AUTH"] = "demo"
    samples: dict[str, list[float]] = {}
    for role, user in USERS.items():
        for language in LANGUAGES:
            at = AppTest.from_file(str(APP), default_timeout=300)
            at.session_state["parcours_demo_user"] = user
            at.session_state["parcours_language"] = language
            at.session_state["parcours_language_loaded_for"] = user
            at.run()
            for page in PAGES[role]:
                at.switch_page(f"app_pages/{page}.py").run()  # warms the cache
                if at.exception:
                    raise RuntimeError(f"{role} {page}: {at.exception[0].value}")
                for _ in range(repeats):
                    at.switch_page(f"app_pages/{page}.py")
                    samples.setdefault(f"{role}: open {page} ({language})", []).append(_timed(at.run))
                if at.selectbox and len(at.selectbox[0].options) > 1:
                    count = len(at.selectbox[0].options)
                    for i in range(repeats):
                        at.selectbox[0].select_index((i + 1) % count)
                        samples.setdefault(f"{role}: change selection on {page} ({language})", []).append(
                            _timed(at.run)
                        )
    return {name: _percentiles(values) for name, values in samples.items()}


def measure(serving: Path) -> dict[str, Any]:
    started = time.perf_counter()
    queries = query_latency(serving)
    reruns = rerun_latency(serving)
    return {
        "seconds": time.perf_counter() - started,
        "queries": queries,
        "reruns": reruns,
        "query_p95_ms_worst": max(q["p95_ms"] for q in queries.values()),
        "rerun_p95_ms_worst": max(r["p95_ms"] for r in reruns.values()),
    }
