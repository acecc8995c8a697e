"""The dashboards with Streamlit's AppTest: every page for every role, sign-in, denial and exports."""

import ast
import gc
import html
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import data_access
from dashboards.access import DEMO_ACCESS_FILE, Denied, Viewer
from dashboards.audit import read_log
from dashboards.exports import csv_bytes, csv_safe
from dashboards.figures import hospitalisation_rates_chart
from dashboards.preferences import load_language
from dashboards.reports import study_report_html
from dashboards.study_content import study_content
from pipelines.bench.demo_timing import sign_in_text
from tests.conftest import PipelineRun

APP = str(Path(__file__).resolve().parent.parent / "dashboards" / "streamlit_app.py")
FUNDER = "funder@demo.parcours.fr"
AGENCY = "agency@demo.parcours.fr"
ANALYST = "analyst@demo.parcours.fr"
PAGES: dict[str, dict[str, str | None]] = {
    FUNDER: {
        "funder_studies.py": "Études d'impact",
        "funder_study.py": None,  # titled by the study's question
        "funder_overview.py": "Vue d'ensemble de la fédération",
        "funder_territories.py": "Territoires et ventilations",
        "glossary.py": "Glossaire",
    },
    AGENCY: {
        "agency_caseload.py": "File active · AG002",
        "agency_peers.py": "Résultats face aux pairs · AG002",
        "glossary.py": "Glossaire",
    },
    ANALYST: {
        "analyst_files.py": "Fichiers et qualité",
        "analyst_operations.py": "Opérations",
        "analyst_agencies.py": "Toutes les agences",
        "analyst_study_builder.py": "Construire une étude",
        "funder_studies.py": "Études d'impact",
        "funder_study.py": None,
        "funder_overview.py": "Vue d'ensemble de la fédération",
        "funder_territories.py": "Territoires et ventilations",
        "agency_caseload.py": "File active · AG001",
        "agency_peers.py": "Résultats face aux pairs · AG001",
    },
}
ENGLISH = {
    "Études d'impact": "Impact studies", "Vue d'ensemble de la fédération": "Federation overview",
    "Territoires et ventilations": "Territories and breakdowns", "Glossaire": "Glossary",
    "File active · AG002": "Caseload · AG002", "Résultats face aux pairs · AG002": "Outcomes against peers · AG002",
    "Fichiers et qualité": "Files and quality", "Toutes les agences": "All agencies",
    "Construire une étude": "Study builder", "File active · AG001": "Caseload · AG001",
    "Résultats face aux pairs · AG001": "Outcomes against peers · AG001", "Opérations": "Operations",
}  # fmt: skip


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
    monkeypatch: pytest.MonkeyPatch,
    serving: Path,
    user: str | None,
    mode: str = "demo",
    run: bool = True,
    language: str | None = None,
) -> AppTest:
    monkeypatch.setenv("PARCOURS_SERVING", str(serving))
    monkeypatch.setenv("PARCOURS_AUTH", mode)
    at = AppTest.from_file(APP, default_timeout=120)
    if mode == "demo" and user:
        at.session_state["parcours_demo_user"] = user
    if language:  # as if the user had chosen it earlier in this session
        at.session_state["parcours_language"] = language
        at.session_state["parcours_language_loaded_for"] = user
    if mode == "oidc":
        monkeypatch.setenv("PARCOURS_ACCESS_FILE", str(DEMO_ACCESS_FILE))
        at.user = {"is_logged_in": bool(user), "email": user} if user else {"is_logged_in": False}
    return at.run() if run else at


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("user", list(PAGES))
def test_every_page_of_every_role_renders_in_both_languages(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path, user: str, language: str
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, user, language=language)
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
            assert at.title[0].value == (title if language == "fr" else ENGLISH[title])
        shown = " ".join([m.value for m in at.markdown] + [str(c.value) for c in at.caption])
        assert "None" not in shown.split(), (page, shown)
        assert "nan" not in shown.split(), (page, shown)
    views = [e for e in read_log(audit_dir / "audit" / "audit.jsonl") if e["event"] == "page_view"]
    assert {e["user"] for e in views} == {user}


def test_signed_out_visitors_see_only_the_sign_in_page(monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, None)
    assert not at.exception
    assert at.title[0].value == "Parcours"
    assert sign_in_text() in [m.value for m in at.markdown]  # what the demo's timing waits for in a browser
    assert {b.label for b in at.button} >= {
        "Se connecter en tant que Demo funder (financeur)",
        "Se connecter en tant que Demo analyst (analyste)",
    }
    assert not at.metric
    assert not at.dataframe
    oidc = _app(monkeypatch, small_run.settings.serving_path, None, mode="oidc")
    assert [b.label for b in oidc.button] == ["Se connecter"]


@pytest.mark.parametrize("mode", ["demo", "oidc"])
def test_an_unknown_user_is_denied(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path, mode: str
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, "stranger@example.org", mode=mode)
    assert not at.exception
    assert at.title[0].value == "Accès refusé"
    assert not at.metric
    assert any(e["event"] == "denied" for e in read_log(audit_dir / "audit" / "audit.jsonl"))


def test_production_sign_in_reads_the_role_from_the_access_map(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, FUNDER, mode="oidc")
    assert not at.exception
    assert at.title[0].value == "Études d'impact"


def test_without_an_access_map_production_denies_everyone(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, FUNDER, mode="oidc", run=False)
    monkeypatch.delenv("PARCOURS_ACCESS_FILE")
    at.run()
    assert at.title[0].value == "Accès refusé"
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
    assert set().union(*(e.keys() for e in entries)) <= allowed | {"design", "outcome", "language"}


def test_csv_exports_neutralise_formula_like_cells() -> None:
    frame = pl.DataFrame({"name": ["=HYPERLINK(1)", "+1", "-2", "@SUM", "plain"], "value": [-1.5, 2, 3, 4, 5]})
    text = csv_safe(frame).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text
    assert "'+1" in text
    assert "'@SUM" in text
    assert "\nplain," in text
    assert "-1.5" in text  # numbers are numbers, not neutralised
    french = csv_bytes(frame, "fr").decode("utf-8-sig")
    assert french.splitlines()[1] == "'=HYPERLINK(1);-1,5"  # what a French spreadsheet reads


def test_no_page_relies_on_streamlit_magic_which_is_off() -> None:
    """Magic (a bare expression written to the page) is off: it cost every AppTest rerun 15-25 ms of parsing.
    A page that wrote a value by magic would now show nothing, so none may hold such an expression."""
    root = Path(APP).parent
    config = tomllib.loads((root.parent / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["runner"]["magicEnabled"] is False
    scripts = [Path(APP), *sorted((root / "app_pages").glob("*.py"))]
    assert len(scripts) > 10
    bare = []
    for script in scripts:
        for parent in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            for field, children in ast.iter_fields(parent):
                for i, node in enumerate(children if isinstance(children, list) else []):
                    if not isinstance(node, ast.Expr):
                        continue
                    if isinstance(node.value, ast.Call | ast.Await | ast.Yield | ast.YieldFrom):
                        continue  # what magic never wrote either
                    docstring = (
                        field == "body"
                        and i == 0
                        and isinstance(parent, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef)
                        and isinstance(node.value, ast.Constant)
                        and isinstance(node.value.value, str)
                    )
                    if not docstring:
                        bare.append(f"{script.name}:{node.lineno}")
    assert bare == []


def test_the_study_report_is_self_contained(monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun) -> None:
    monkeypatch.setenv("PARCOURS_SERVING", str(small_run.settings.serving_path))
    # The analyst's view: whether the small federation's studies pass the gate is not this test's subject.
    analyst = Viewer(ANALYST, "analyst")
    study = data_access.studies(analyst)["study"][0]
    rows = data_access.study_detail(analyst, study)
    meta = data_access.snapshot_metadata(analyst)
    content = study_content(rows, data_access.study_diagnostics(analyst, study), meta, "fr")
    rates = hospitalisation_rates_chart(data_access.hospitalisation_rates(analyst), "fr")
    page = study_report_html(content, {"rates": rates}, "fr")
    assert "<script" in page
    assert "plotly" in page.lower()
    assert 'src="http' not in page  # nothing fetched from elsewhere
    text = html.unescape(page)
    assert content.title in text
    assert content.verdict.split(" :")[0] in text  # the verdict in words, first
    assert meta["run_id"][:8] in text  # provenance
    assert "size: A4" in text  # laid out for A4
    assert text.index(content.verdict.split(" :")[0]) < text.index("<script")


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
    assert metrics["Personnes suivies"] == "non communiqué"
    assert metrics["Taux, personnes suivies"] == "non communiqué"
    assert (at.dataframe[0].value["personnes"] == "non communiqué").all()


def test_the_funder_sees_every_region_on_a_map_that_fetches_nothing(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, FUNDER)
    at.switch_page("app_pages/funder_territories.py").run()
    assert not at.exception
    regions = at.dataframe[0].value
    assert (regions["taux pour 1\u202f000 années-personnes"] != "non communiqué").sum() >= 5
    assert not regions["région"].str.fullmatch(r"\d+").any()  # régions by name
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "geo" not in spec["layout"]
    assert "mapbox" not in json.dumps(spec["layout"])
    filled = [t for t in spec["data"] if t.get("fill") == "toself"]
    assert len(filled) == 13  # the metropolitan régions, each drawn from its outline
    assert sum(t["fillcolor"] != "#d9d9d9" for t in filled) >= 5  # not an empty map


def test_the_language_chosen_is_remembered_for_the_user_on_the_server(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, AGENCY)
    assert at.title[0].value == "File active · AG002"  # French by default
    picker: Any = next(s for s in at.get("button_group"))
    picker.set_value("en").run()
    assert not at.exception
    assert at.title[0].value == "Caseload · AG002"
    assert load_language(audit_dir / "preferences", AGENCY) == "en"
    assert not any(AGENCY in p.name for p in (audit_dir / "preferences").iterdir())  # no e-mail in a file name
    again = _app(monkeypatch, small_run.settings.serving_path, AGENCY)  # a new session of the same user
    assert again.title[0].value == "Caseload · AG002"
    other = _app(monkeypatch, small_run.settings.serving_path, ANALYST)  # another user keeps French
    assert other.title[0].value == "Fichiers et qualité"


def test_the_study_page_opens_on_the_headline_study_verdict_first(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun, audit_dir: Path
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, ANALYST)
    at.switch_page("app_pages/funder_study.py").run()
    assert not at.exception
    first = data_access.studies(Viewer(ANALYST, "analyst")).row(0, named=True)
    assert first["study_order"] == data_access.studies(Viewer(ANALYST, "analyst"))["study_order"].min()
    assert at.selectbox[0].value == first["study"]
    headers = [m.value for m in at.markdown if m.value.startswith("####")]
    assert headers[0] == "#### Le verdict"
    assert headers[-2:] == ["#### Méthode et limites", "#### Plan d'analyse enregistré"]
    assert any(m.value.startswith("Enregistré le ") for m in at.markdown)  # the plan's registration, in words
    subheaders = [h.value for h in at.subheader]
    assert (
        subheaders.index("L'effet et son intervalle") < subheaders.index("Les preuves") < subheaders.index("Graphiques")
    )
    checks = at.dataframe[-2 if len(at.dataframe) > 1 else 0].value
    assert {"contrôle", "valeur", "seuil", "résultat"} <= set(at.dataframe[1].value.columns) | set(checks.columns)


def test_the_operations_page_shows_partitions_late_exports_and_releases(
    monkeypatch: pytest.MonkeyPatch, small_run: PipelineRun
) -> None:
    at = _app(monkeypatch, small_run.settings.serving_path, ANALYST)
    at.switch_page("app_pages/analyst_operations.py").run()
    assert not at.exception
    partitions = at.dataframe[0].value
    assert {"agence", "période", "fichiers", "reçu le"} <= set(partitions.columns)
    assert len(partitions) == 6  # the small federation: six agencies, one export period each
    releases = at.dataframe[-1].value
    assert "publication" in releases.columns
    assert any("Publication " in c.value for c in at.sidebar.caption)  # every page names its release


def test_funders_and_agencies_cannot_read_operations_or_releases(small_run: PipelineRun) -> None:
    for user in (FUNDER, AGENCY):
        viewer = Viewer(user, "funder" if user == FUNDER else "agency", None if user == FUNDER else "AG002")
        with pytest.raises(Denied):
            data_access.operations_table(viewer, "landing_files")
        with pytest.raises(Denied):
            data_access.releases(viewer)
