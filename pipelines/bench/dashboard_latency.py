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


def rerun_latency(serving: Path, repeats: int = REPEATS) -> dict[str, dict[str, float]]:
    from streamlit.testing.v1 import AppTest

    os.environ["PARCOURS_SERVING"] = str(serving)
    os.environ["PARCOURS_AUTH"] = "demo"
    samples: dict[str, list[float]] = {}
    for role, user in USERS.items():
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.session_state["parcours_demo_user"] = user
        at.run()
        pages = [p for p in sorted((APP.parent / "app_pages").glob("*.py")) if p.stem.startswith(role)]
        for page in pages:
            at.switch_page(f"app_pages/{page.name}").run()  # warms the cache
            if at.exception:
                raise RuntimeError(f"{role} {page.stem}: {at.exception[0].value}")
            for _ in range(repeats):
                at.switch_page(f"app_pages/{page.name}")
                samples.setdefault(f"{role}: open {page.stem}", []).append(_timed(at.run))
            if at.selectbox and len(at.selectbox[0].options) > 1:
                box = at.selectbox[0]
                options = list(box.options)
                for i in range(repeats):
                    at.selectbox[0].set_value(options[(i + 1) % len(options)])
                    samples.setdefault(f"{role}: change {box.label!r} on {page.stem}", []).append(_timed(at.run))
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
