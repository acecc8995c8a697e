"""How long ``make demo`` takes to show a dashboard: from the command to the first page a browser shows.

``python -m pipelines.bench.demo_timing [--port N]`` runs ``make demo`` on a free port (never 8501, which
a developer's own demo may hold), notes when each step ends from its output (the federation written,
the pipeline's stages, the server up), then opens the dashboard in Debian's chromium (Playwright) and
waits for the sign-in page: that moment is the figure. Without chromium it stops at the server's
first answer and says so. The demo is stopped at the end; one JSON line gives the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKS = {
    "generated": re.compile(r"^wrote \d+ files"),
    "pipeline_done": re.compile(r"^parcours run: "),
    "server_listening": re.compile(r"URL: http"),
}
"""Output lines that end a step of ``make demo``."""
STAGE_LINE = re.compile(r"^  (ingest|quality|models|studies|publication) +(\d+\.\d) s ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _watch(stream: Any, started: float, seen: dict[str, float], stages: dict[str, float], log: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        log.append(line)
        now = time.perf_counter() - started
        for mark, pattern in MARKS.items():
            if mark not in seen and pattern.search(line):
                seen[mark] = now
        stage = STAGE_LINE.match(line)
        if stage:
            stages[stage.group(1)] = float(stage.group(2))


def _wait_for_server(url: str, deadline: float) -> bool:
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:  # noqa: S310 (http, local)
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def sign_in_text() -> str:
    """What the sign-in page says first, in the language a visitor gets before choosing one."""
    from pipelines.presentation.catalogue import t

    return t("signin.tagline")


def _first_page(url: str, timeout_s: float) -> str | None:
    """The sign-in page shown by a real browser (the script has run once in a session): None once shown,
    else what went wrong, for the result."""
    from playwright.sync_api import Error, expect, sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        except Error as exc:
            return f"chromium did not start: {exc}"
        try:
            page = browser.new_page()
            page.goto(url, timeout=timeout_s * 1000)
        except Error as exc:
            browser.close()
            return f"the page did not load: {exc}"
        try:
            expect(page.get_by_text(sign_in_text())).to_be_visible(timeout=timeout_s * 1000)
            return None
        except AssertionError:
            return f"the server answered, but no page showed {sign_in_text()!r} before the deadline"
        finally:
            browser.close()


def time_demo(port: int, timeout_s: float = 600) -> dict[str, Any]:
    env = {**os.environ, "DEMO_PORT": str(port)}
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 (our own Makefile)
        [shutil.which("make") or "/usr/bin/make", "--no-print-directory", "demo", f"DEMO_PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: dict[str, float] = {}
    stages: dict[str, float] = {}
    log: list[str] = []
    reader = threading.Thread(target=_watch, args=(process.stdout, started, seen, stages, log), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"port": port}
    try:
        deadline = started + timeout_s
        if not _wait_for_server(url, deadline) or process.poll() not in (None, 0):
            result["error"] = "make demo ended or timed out before serving: " + " | ".join(log[-8:])
            return result
        result["server_answered_s"] = time.perf_counter() - started
        if shutil.which("chromium") or shutil.which("chromium-browser"):
            problem = _first_page(url, max(deadline - time.perf_counter(), 1))
            if problem is None:
                result["first_page_shown_s"] = time.perf_counter() - started
            else:
                result["error"] = problem
        else:
            result["note"] = "no chromium: the figure is the server's first answer, not a page shown"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=5)
    result.update({f"{mark}_s": round(t, 2) for mark, t in seen.items()})
    result["stages_s"] = stages
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port for the demo's server (default: a free one)")
    args = parser.parse_args()
    result = time_demo(args.port or free_port())
    print(json.dumps(result))
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
