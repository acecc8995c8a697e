from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from pipelines.cli import main
from pipelines.contract import Contract, load_contract, reference_codes, render_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_contract_covers_every_entity_of_the_brief() -> None:
    contract = load_contract()
    assert set(contract.entities) == {
        "agencies",
        "care_managers",
        "persons",
        "carers",
        "episodes",
        "events",
        "assessments",
        "service_plans",
        "interventions",
    }
    assert contract.entity("episodes").field("entry_situation").allowed == (
        "prevention",
        "rupture",
        "hospital_discharge",
        "crisis",
        "carer_exhaustion",
        "administrative",
    )
    event_types = set(contract.entity("events").field("event_type").allowed or ())
    assert {"hospital_admission", "emergency_visit", "service_interruption", "death"} <= event_types


def test_no_field_could_hold_a_direct_identifier() -> None:
    names = {f.name for e in load_contract().entities.values() for f in e.fields}
    for forbidden in ("name", "first_name", "last_name", "nir", "address", "postcode", "phone", "email", "birth_date"):
        assert forbidden not in names


def test_departements_include_corsica_and_overseas() -> None:
    codes = reference_codes("departements")
    assert len(codes) == 101
    assert {"2A", "2B", "971", "976", "01"} <= set(codes)


def test_published_contract_page_matches_the_yaml() -> None:
    page = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert page == render_markdown(load_contract())
    assert main(["contract-doc", "--check"]) == 0


def test_a_malformed_contract_is_refused() -> None:
    raw = yaml.safe_load((ROOT / "quality" / "contract.yaml").read_text(encoding="utf-8"))
    raw["entities"]["persons"]["primary_key"] = ["nobody"]
    with pytest.raises(ValidationError, match="primary key"):
        Contract.model_validate(raw)


def test_every_reason_code_is_documented() -> None:
    from pipelines.ingest.reasons import DESCRIPTIONS, Reason

    page = (ROOT / "docs" / "ingestion.md").read_text(encoding="utf-8")
    for reason in Reason:
        assert f"| `{reason.value}` |" in page
        assert reason in DESCRIPTIONS
