"""The dashboard in a real browser, signed in through a real OpenID Connect provider started by the test.

Debian's chromium is driven by Playwright; the provider is ``oidc-provider-mock`` (a Flask/Authlib OpenID
provider from PyPI) on a free local port, and Streamlit's own ``st.login`` talks to it (no mock of
``st.login``). Each role signs in, visits every page of its role in French, switches to English (remembered
for the user), visits them again, and every page is saved as a screenshot in ``test-artifacts/``. Every
request that is not to the dashboard or the provider is blocked, and a dashboard page that attempts one
fails the test. Every tab of a tabbed page is shown in turn (a click in the same page, no new page load) and
saved too. The analyst also exports the A4 PDF report. One chromium for the module, one test (and browser
contexts) per role.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import unicodedata
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dashboards.access import DEMO_ACCESS_FILE
from tests.conftest import PipelineRun

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEWPORT: Any = {"width": 1400, "height": 1000}  # Playwright's ViewportSize
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = {
    "funder": "funder@demo.parcours.fr",
    "agency": "agency@demo.parcours.fr",
    "analyst": "analyst@demo.parcours.fr",
}
PAGES = {
    "funder": [("Études d'impact", "Impact studies"), ("Détail d'une étude", "Study detail"),
               ("Vue d'ensemble de la fédération", "Federation overview"),
               ("Territoires et ventilations", "Territories and breakdowns"), ("Glossaire", "Glossary")],
    "agency": [("File active", "Caseload"), ("Résultats face aux pairs", "Outcomes against peers"),
               ("Glossaire", "Glossary")],
    "analyst": [("Fichiers et qualité", "Files and quality"), ("Opérations", "Operations"),
                ("Toutes les agences", "All agencies"),
                ("Construire une étude", "Study builder"), ("Études d'impact", "Impact studies"),
                ("Détail d'une étude", "Study detail"), ("Vue d'ensemble de la fédération", "Federation overview"),
                ("Territoires et ventilations", "Territories and breakdowns"), ("File active", "Caseload"),
                ("Résultats face aux pairs", "Outcomes against peers"), ("Glossaire", "Glossary")],
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds:.0f} s")


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A real OpenID Connect provider on a free port; each demo user is one click away on its sign-in form."""
    from oidc_provider_mock import User, run_server_in_thread

    users = [User(sub=email, claims={"email": email, "email_verified": True}) for email in USERS.values()]
    with run_server_in_thread(port=_free_port(), user_claims=users) as server:
        url = f"http://localhost:{server.server_port}"
        _wait(f"{url}/.well-known/openid-configuration")
        yield url


@pytest.fixture(scope="module")
def dashboard_url(small_run: PipelineRun, provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Streamlit in production mode (``PARCOURS_AUTH`` unset: ``st.login``), configured for the provider."""
    port = _free_port()
    folder = tmp_path_factory.mktemp("browser")
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "parcours-browser-test"\n'
        f'client_secret = "{secrets.token_hex(16)}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if key != "PARCOURS_AUTH"}
    env |= {
        "PARCOURS_SERVING": str(small_run.settings.serving_path),
        "PARCOURS_DATA_DIR": str(folder / "data"),
        "PARCOURS_ACCESS_FILE": str(DEMO_ACCESS_FILE),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "streamlit_app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--secrets.files", str(secrets_file)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/_stcore/health")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def _offline_page(context: Any, dashboard_url: str, provider: str, attempts: list[str]) -> Any:
    """A page whose every request to anything but the dashboard and the provider is blocked; the dashboard's
    attempts are recorded (the provider's own page asks a stylesheet from a CDN: blocked, not the product's)."""
    page = context.new_page()
    allowed = {urlsplit(dashboard_url).netloc, urlsplit(provider).netloc}

    def route(request_route: Any) -> None:
        request = request_route.request
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc not in allowed:
            frame = request.frame.url if request.frame else ""
            if not frame.startswith(provider):
                attempts.append(request.url)
            request_route.abort()
        else:
            request_route.continue_()

    page.route("**/*", route)
    return page


QUIET = """() => {
    // Streamlit shows its status widget ("Running...", "Stop") during a run: the page is drawn once it has not
    // been seen for a whole second (it appears a moment after a click, so a single look is not enough).
    if (document.querySelector('[data-testid="stStatusWidget"]')) { window.parcoursQuietSince = null; return false; }
    window.parcoursQuietSince = window.parcoursQuietSince || Date.now();
    return Date.now() - window.parcoursQuietSince > 1000;
}"""


def _settle(page: Any) -> None:
    """Wait for Streamlit to finish a run and for charts to draw; on a timeout, keep what the page showed."""
    page.wait_for_load_state("networkidle")
    page.evaluate("() => { window.parcoursQuietSince = null; }")
    try:
        page.wait_for_function(QUIET, polling=200, timeout=120_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "failed_to_settle.png"), full_page=True)
        raise
    page.wait_for_timeout(500)


def _sign_in(page: Any, dashboard_url: str, email: str) -> None:
    from playwright.sync_api import expect

    page.goto(dashboard_url)
    # The server's first script run imports Polars, Plotly and DuckDB: slow on a busy machine.
    expect(page.get_by_role("button", name="Se connecter")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r"localhost:\d+/oauth2/authorize"), timeout=30_000)
    page.get_by_role("button", name=email).first.click()  # the provider's one-click sign-in for this user
    page.wait_for_url(re.compile(re.escape(dashboard_url)), timeout=30_000)
    expect(page.get_by_text("Connecté : ")).to_be_visible(timeout=30_000)


def _slug(text: str) -> str:
    """Plain ASCII for a file name: « Résultats » gives ``resultats``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def _visit(page: Any, role: str, title: str, name: str, language: str) -> list[Path]:
    """Open a page from the sidebar, wait for its run to end, save it as ``<role>_<name>_<language>.png``,
    then each further tab of its tabbed sections as ``<role>_<name>_<language>_tab<n>_<label>.png``."""
    from playwright.sync_api import expect

    link = page.get_by_role("link", name=title, exact=True).first
    target = link.get_attribute("href") or ""
    link.click()
    page.wait_for_url(lambda url: urlsplit(url).path.rstrip("/") == urlsplit(target).path.rstrip("/"), timeout=30_000)
    _settle(page)
    expect(page.locator("h1").first).to_be_visible(timeout=30_000)
    stem = f"{role}_{_slug(name)}_{language}"  # the English title: the same names in both languages
    shots = [ARTIFACTS / f"{stem}.png"]
    _screenshot_whole(page, shots[0])
    # Streamlit draws every tab's content with the page: a click only shows another, without a rerun.
    tabs = page.get_by_test_id("stMain").get_by_role("tab")
    for index in range(tabs.count()):
        tab = tabs.nth(index)
        if tab.get_attribute("aria-selected") == "true":
            continue  # shown in the page's own screenshot
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true")
        shots.append(ARTIFACTS / f"{stem}_tab{index + 1}_{_slug(tab.inner_text())}.png")
        _screenshot_whole(page, shots[-1])
    return shots


def _screenshot_whole(page: Any, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so the window is made as tall as that block."""
    height = page.evaluate(
        """() => Math.max(document.body.scrollHeight,
            ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stMainBlockContainer"]')]
                .map(e => e.scrollHeight + e.getBoundingClientRect().top))"""
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max(VIEWPORT["height"], height), 16_000))})
    page.wait_for_timeout(600)  # charts redraw at the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for every role (each role signs in in contexts of its own)."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


TABBED = {
    "funder": {"territories_and_breakdowns"},
    "agency": {"outcomes_against_peers"},
    "analyst": {"territories_and_breakdowns", "outcomes_against_peers"},
}
"""Pages that always show tabs for the role (the territories' breakdowns, the peers' outcome families): each
tab past the first must have its own screenshot."""


@pytest.mark.parametrize("role", ["analyst", "funder", "agency"])  # the longest first: xdist's next file waits less
def test_each_role_signs_in_through_openid_connect_and_every_page_renders_in_both_languages(
    browser: Any, dashboard_url: str, provider: str, role: str
) -> None:
    from playwright.sync_api import expect

    email = USERS[role]
    attempts: list[str] = []
    pages: list[Path] = []
    tabs: list[Path] = []
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = _offline_page(context, dashboard_url, provider, attempts)
    _sign_in(page, dashboard_url, email)
    for french, english in PAGES[role]:
        first, *others = _visit(page, role, french, english, "fr")
        pages.append(first)
        tabs += others
        if role == "analyst" and french == "Détail d'une étude":
            expect(page.get_by_text("Le verdict")).to_be_visible()
            page.get_by_role("button", name="Préparer le PDF").click()
            with page.expect_download(timeout=120_000) as download:
                page.get_by_role("button", name="Rapport (PDF A4)").click(timeout=120_000)
            download.value.save_as(ARTIFACTS / "study_report.pdf")
    # Pages of other roles are not even registered: no link to them.
    other = {"funder": "Fichiers et qualité", "agency": "Études d'impact", "analyst": None}[role]
    if other:
        expect(page.get_by_role("link", name=other)).to_have_count(0)
    # The language picker (a segmented control: its options are not "button"s to assistive technology).
    page.get_by_test_id("stSidebar").get_by_text("English", exact=True).click()
    _settle(page)
    for _, english in PAGES[role]:
        first, *others = _visit(page, role, english, english, "en")
        pages.append(first)
        tabs += others
    # Remembered on the server for this user: a new browser session opens in English.
    context.close()
    context = browser.new_context(viewport=VIEWPORT)
    page = _offline_page(context, dashboard_url, provider, attempts)
    page.goto(dashboard_url)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_role("button", name=email).first.click()
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=30_000)
    context.close()

    assert attempts == [], f"the dashboard asked for resources outside its server: {attempts}"
    # One screenshot per page and language, and one per further tab, none written over another.
    assert len(pages) == 2 * len(PAGES[role])
    assert len(set(pages + tabs)) == len(pages) + len(tabs)
    assert all(s.stat().st_size > 10_000 for s in pages + tabs)
    for language in ("fr", "en"):
        marker = f"_{language}_tab"
        tabbed = {s.name.removeprefix(f"{role}_").split(marker)[0] for s in tabs if marker in s.name}
        assert TABBED[role] <= tabbed, (language, tabbed)
    if role == "analyst":
        pdf = (ARTIFACTS / "study_report.pdf").read_bytes()
        assert pdf.startswith(b"%PDF")
        sizes = {tuple(round(float(v)) for v in box.split()) for box in re.findall(rb"/MediaBox\s*\[([^\]]+)\]", pdf)}
        assert sizes == {(0, 0, 595, 842)}  # every page A4 (US Letter is 612 x 792)
