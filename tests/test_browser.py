"""The dashboard in a real browser: Debian's chromium driven by Playwright."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import PipelineRun

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dashboard_url(small_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "PARCOURS_SERVING": str(small_run.settings.serving_path),
        "PARCOURS_DATA_DIR": str(tmp_path_factory.mktemp("browser")),
        "PARCOURS_AUTH": "demo",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboards" / "streamlit_app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Streamlit server did not start within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


DEMO_USERS = {
    "funder": ("Demo funder", "Impact studies"),
    "agency": ("Demo agency", "Caseload · AG002"),
    "analyst": ("Demo analyst", "Files and quality"),
}


def _offline_page(browser: Any, dashboard_url: str, attempts: list[str]) -> Any:
    """A page whose every request to anything but the dashboard's own server is blocked and recorded:
    the product must work with no network at all (no CDN, no map tiles, no fonts from elsewhere)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    local = urlsplit(dashboard_url).netloc

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != local:
            attempts.append(url)
            request_route.abort()
        else:
            request_route.continue_()

    page.route("**/*", route)
    return page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` installs it)")
@pytest.mark.parametrize("role", list(DEMO_USERS))
def test_each_demo_user_signs_in_and_sees_their_pages(dashboard_url: str, role: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    name, heading = DEMO_USERS[role]
    ARTIFACTS.mkdir(exist_ok=True)
    attempts: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = _offline_page(browser, dashboard_url, attempts)
            page.goto(dashboard_url)
            expect(page.get_by_text("Please sign in")).to_be_visible(timeout=30_000)
            page.get_by_role("button", name=f"Sign in as {name}").click()
            expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Signed in as")).to_be_visible()
            # The analyst opens a study whether or not it passed the gate (the small federation's may not):
            # the study page and its PDF export are the same for both roles.
            if role == "analyst":
                page.get_by_role("link", name="Study detail").click()
                expect(page.get_by_text("Method and limits, in plain words")).to_be_visible(timeout=30_000)
                expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
                page.get_by_role("button", name="Prepare PDF").click()
                with page.expect_download(timeout=90_000) as download:
                    page.get_by_role("button", name="Report (PDF)").click(timeout=90_000)
                download.value.save_as(ARTIFACTS / "study_report.pdf")
            elif role == "funder":
                none = page.get_by_text("No study is publishable yet.")
                published = page.locator("[data-testid='stDataFrame']").or_(none)
                expect(published.first).to_be_visible(timeout=30_000)
                page.get_by_role("link", name="Territories and breakdowns").click()
                expect(page.get_by_role("heading", name="Territories and breakdowns")).to_be_visible(timeout=30_000)
                expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
                page.wait_for_timeout(1_500)  # let the map draw (and ask for anything it would fetch)
                page.screenshot(path=str(ARTIFACTS / "funder_territories.png"), full_page=True)
            else:
                expect(page.locator(".js-plotly-plot, [data-testid='stDataFrame']").first).to_be_visible(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / f"{role}.png"), full_page=True)
            # Pages of other roles are not even registered: no link to them.
            other = {"funder": "Files and quality", "agency": "Impact studies", "analyst": None}[role]
            if other:
                expect(page.get_by_role("link", name=other)).to_have_count(0)
        finally:
            browser.close()
    assert attempts == [], f"the dashboard asked for resources outside its server: {attempts}"
    assert (ARTIFACTS / f"{role}.png").stat().st_size > 10_000
    if role == "analyst":
        assert (ARTIFACTS / "study_report.pdf").read_bytes().startswith(b"%PDF")
