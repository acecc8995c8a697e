"""The dashboards with Streamlit's AppTest: every page for every role, sign-in, denial and exports."""

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import data_access
from dashboards.access import DEMO_ACCESS_FILE, Denied, Viewer
from dashboards.audit import read_log
from dashboards.figures import hospitalisation_rates_chart
from dashboards.reports import csv_safe, study_report_html
from tests.conftest import PipelineRun

APP = str(Path(__file__).resolve().parent.parent / "dashboards" / "streamlit_app.py")
FUNDER = "funder@demo.parcours.fr"
AGENCY = "agency@demo.parcours.fr"
ANALYST = "analyst@demo.parcours.fr"
PAGES: dict[str, dict[str, str | None]] = {
    FUNDER: {
        "funder_studies.py": "Impact studies",
        "funder_study.py": None,  # titled by the study's question
        "funder_overview.py": "Federation overview",
        "funder_territories.py": "Territories and breakdowns",
    },
    AGENCY: {"agency_caseload.py": "Caseload · AG002", "agency_peers.py": "Outcomes against peers · AG002"},
    ANALYST: {
        "analyst_files.py": "Files and quality",
        "analyst_agencies.py": "All agencies",
        "analyst_study_builder.py": "Study builder",
        "funder_study.py": None,
        "agency_caseload.py": "Caseload · AG001",
        "agency_peers.py": "Outcomes against peers · AG001",
    },
}


@pytest.fixture(autouse=True)
def _no_collection_during_app_runs() -> Iterator[None]:
    """Collect the earlier pipeline runs' garbage now, then hold collection off while AppTest runs.

    A collection that runs finalizers (Dagster's SQLite connections, made in the main thread) in
    the script thread while CPython 3.11.7 compiles a page fails it with "AST constructor
    recursion depth mismatch" (a CPython 3.11 bug in the compiler's recursion bookkeeping); it
    failed one fresh-clone run of the suite.
    """
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def audit_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PARCOURS_DATA_DIR", str(tmp_path))
    return tmp_path


def _app(
    monkeypatch: pytest.MonkeyPatch, serving: Path, user: str | None, mode: str = "demo", run: bool = True
) -> AppTest:
    monkeypatch.setenv("PARCOURS_SERVING", str(serving))
    monkeypatch.setenv("PARCOURS_AUTH", mode)
    at = AppTest.from_file(APP, default_timeout=120)
    if mode == "demo" and user:
        at.session_state["parcours_demo_user"] = user
    if mode == "oidc":
        monkeypatch.setenv("PARCOURS_ACCESS_FILE", str(DEMO_ACCESS_FILE))
        at.user = {"is_logged_in": bool(user), "email": user} if user else {"is_logged_in": False}
    return at.run() if run else at


@pytest.mark.parametrize("user", list(PAGES))
def test_every_page_of_every_role_renders(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path, user: str
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, user)
    assert not at.exception
    for page, title in PAGES[user].items():
        at.switch_page(f"app_pages/{page}").run()
        assert not at.exception, (page, at.exception)
        # The analyst sees unpublishable studies too, marked as such; nothing else may fail.
        assert all(e.value.startswith(("Non publiable", "Not publishable")) for e in at.error), (
            page,
            [e.value for e in at.error],
        )
        if title:
            assert at.title[0].value == title
    views = [e for e in read_log(audit_dir / "audit" / "audit.jsonl") if e["event"] == "page_view"]
    assert {e["user"] for e in views} == {user}


def test_signed_out_visitors_see_only_the_sign_in_page(monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, None)
    assert not at.exception
    assert at.title[0].value == "Parcours"
    assert {b.label for b in at.button} >= {"Sign in as Demo funder (funder)", "Sign in as Demo analyst (analyst)"}
    assert not at.metric
    assert not at.dataframe
    oidc = _app(monkeypatch, small_run.settings.serving_path, None, mode="oidc")
    assert [b.label for b in oidc.button] == ["Sign in"]


@pytest.mark.parametrize("mode", ["demo", "oidc"])
def test_an_unknown_user_is_denied(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path, mode: str
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, "stranger@example.org", mode=mode)
    assert not at.exception
    assert at.title[0].value == "Access denied"
    assert not at.metric
    assert any(e["event"] == "denied" for e in read_log(audit_dir / "audit" / "audit.jsonl"))


def test_production_sign_in_reads_the_role_from_the_access_map(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, FUNDER, mode="oidc")
    assert not at.exception
    assert at.title[0].value == "Impact studies"


def test_without_an_access_map_production_denies_everyone(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, FUNDER, mode="oidc", run=False)
    monkeypatch.delenv("PARCOURS_ACCESS_FILE")
    at.run()
    assert at.title[0].value == "Access denied"
    assert "PARCOURS_ACCESS_FILE" in at.error[0].value


def test_a_funder_reads_publishable_studies_only_and_an_agency_only_its_own_data(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    monkeypatch.setenv("PARCOURS_SERVING", str(small_run.settings.serving_path))
    funder = Viewer(FUNDER, "funder")
    agency = Viewer(AGENCY, "agency", "AG002")
    analyst = Viewer(ANALYST, "analyst")
    assert data_access.studies(funder)["publishable"].all()
    assert not data_access.studies(analyst)["publishable"].all()  # rupture_repair is too small here
    with pytest.raises(Denied):
        data_access.study_detail(funder, "rupture_repair")
    with pytest.raises(Denied):
        data_access.agency_caseload(agency, "AG003")
    with pytest.raises(Denied):
        data_access.landing_files(funder)
    with pytest.raises(Denied):
        data_access.analyst_snapshot_path(agency)
    with pytest.raises(Denied):
        data_access.studies(agency)
    assert set(data_access.agency_caseload(agency)["agency_id"]) == {"AG002"}
    peers = data_access.agency_peers(agency)
    assert "agency_id" not in peers.peers.columns
    assert peers.peers["peer"].str.starts_with("Peer ").all()


def test_the_audit_log_names_pages_and_exports_never_case_values(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    _app(monkeypatch, small_run.settings.serving_path, AGENCY)
    entries = read_log(audit_dir / "audit" / "audit.jsonl")
    assert entries
    allowed = {"at", "user", "role", "agency_id", "event", "page", "reason", "format", "table", "rows", "study"}
    assert set().union(*(e.keys() for e in entries)) <= allowed | {"design"}


def test_csv_exports_neutralise_formula_like_cells() -> None:
    frame = pl.DataFrame({"name": ["=HYPERLINK(1)", "+1", "-2", "@SUM", "plain"], "value": [-1.5, 2, 3, 4, 5]})
    text = csv_safe(frame).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text
    assert "'+1" in text
    assert "'@SUM" in text
    assert "\nplain," in text
    assert "-1.5" in text  # numbers are numbers, not neutralised


def test_the_study_report_is_self_contained(monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun) -> None:
    monkeypatch.setenv("PARCOURS_SERVING", str(small_run.settings.serving_path))
    # The analyst's view: whether the small federation's studies pass the gate is not this test's subject.
    analyst = Viewer(ANALYST, "analyst")
    study = data_access.studies(analyst)["study"][0]
    main = data_access.study_detail(analyst, study).filter(pl.col("role") == "main").row(0, named=True)
    page = study_report_html(main, {"Rates": hospitalisation_rates_chart(data_access.hospitalisation_rates(analyst))},
                             json.loads(main["funder_figures"]), "today")  # fmt: skip
    assert "<script" in page
    assert "plotly" in page.lower()
    assert 'src="http' not in page  # nothing fetched from elsewhere
    assert main["question"].split()[0] in page


def test_a_missing_snapshot_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, audit_dir: Path) -> None:
    at = _app(monkeypatch, tmp_path / "none.duckdb", FUNDER)
    assert not at.exception
    assert "make demo" in at.info[0].value


def test_small_cells_never_reach_a_funder(
    monkeypatch: pytest.MonkeyPatch, case_study_run: PipelineRun, audit_dir: Path
) -> None:
    # The case-study federation has 5 care-managed persons and 1 comparison person.
    at = _app(monkeypatch, case_study_run.settings.serving_path, FUNDER)
    at.switch_page("app_pages/funder_overview.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Persons care-managed"] == "suppressed"
    assert metrics["Rate, care-managed"] == "suppressed"
    assert at.dataframe[0].value["persons"].isna().all()


def test_the_funder_sees_every_region_on_a_map_that_fetches_nothing(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, FUNDER)
    at.switch_page("app_pages/funder_territories.py").run()
    assert not at.exception
    regions = at.dataframe[0].value
    assert regions["unplanned_rate_per_1000py"].notna().sum() >= 5
    assert not regions["label"].str.fullmatch(r"\d+").any()  # régions by name
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "geo" not in spec["layout"]
    assert "mapbox" not in json.dumps(spec["layout"])
    filled = [t for t in spec["data"] if t.get("fill") == "toself"]
    assert len(filled) == 13  # the metropolitan régions, each drawn from its outline
    assert sum(t["fillcolor"] != "#d9d9d9" for t in filled) >= 5  # not an empty map
