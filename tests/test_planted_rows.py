"""The planted-row corpus (``tests/corpus/planted_rows.yaml``): one value planted per row.

All rows are ingested in one run, one file per entity, beside their parents. Each row ends as
its case says (its reason and column, or accepted); an identifier leaves no trace in the
warehouse (raw tables, quarantine with its raw lines, ledger) nor in the reports.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.ingest.reasons import Reason
from tests.corpus.adapter import Ingested, ingest_landing, write_landing

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "corpus" / "planted_rows.yaml").read_text())
AGENCY = "PLT"
TEMPLATES: dict[str, dict[str, str]] = {
    "interventions": {"intervention_id": "I{n}", "episode_id": "E1", "intervention_date": "2025-03-15",
                      "intervention_type": "mediation", "note": "RAS"},
    "persons": {"person_id": "PX{n}", "agency_id": AGENCY, "birth_year": "1940", "sex": "F", "departement": "75",
                "lives_alone": "true", "benefit": "APA", "contact": ""},
    "episodes": {"episode_id": "EX{n}", "person_id": "P1", "agency_id": AGENCY, "care_manager_id": "CM1",
                 "cohort": "care_managed", "referral_date": "2025-01-02", "start_date": "2025-01-10",
                 "referral_source": "ccas", "payer": "family", "entry_situation": "prevention"},
    "events": {"event_id": "V{n}", "person_id": "P1", "event_type": "fall", "event_date": "2025-02-01"},
    "assessments": {"assessment_id": "A{n}", "person_id": "P1", "episode_id": "E1", "assessment_date": "2025-02-01",
                    "gir": "3"},
    "carers": {"carer_id": "C{n}", "person_id": "P1", "relationship": "child", "age_band": "55_64",
               "employed": "true", "lives_with_person": "false"},
    "service_plans": {"person_id": "P1", "month": "2024-01-01", "funder": "F{n}", "hours_granted": "40",
                      "hours_delivered": "30"},
}  # fmt: skip
PARENTS = {
    f"{AGENCY}/{AGENCY}_202512_persons.csv": "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit\n"
    f"P1,{AGENCY},1940,F,75,true,APA\nAG-P2,{AGENCY},1941,M,75,false,APA\nag-p3 ,{AGENCY},1942,F,75,true,APA\n",
    f"{AGENCY}/{AGENCY}_202512_care_managers.csv": f"care_manager_id,agency_id,fte\nCM1,{AGENCY},1.0\n",
    f"{AGENCY}/{AGENCY}_202512_episodes.csv": "episode_id,person_id,agency_id,care_manager_id,cohort,referral_date,"
    "start_date,referral_source,payer,entry_situation\n"
    f"E1,P1,{AGENCY},CM1,care_managed,2025-01-02,2025-01-10,ccas,family,prevention\n",
}
IDENTIFIER = Reason.IDENTIFIER_IN_VALUE.value


def _value(case: dict[str, Any]) -> str:
    return "x" * 2_500 if case["value"] == "!!LONG!!" else str(case["value"])


def _rows_by_entity() -> dict[str, list[tuple[dict[str, Any], dict[str, str]]]]:
    rows: dict[str, list[tuple[dict[str, Any], dict[str, str]]]] = {}
    for n, case in enumerate(CASES, start=1):
        entity = case.get("entity", "interventions")
        row = {k: v.format(n=n) for k, v in TEMPLATES[entity].items()}
        if entity == "service_plans":
            row["funder"] = "APA"
        row[case.get("field", "note")] = _value(case)
        rows.setdefault(entity, []).append((case, row))
    return rows


def _csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ingested, dict[str, tuple[str, int]]]:
    folder = tmp_path_factory.mktemp("planted")
    files = {name: text.encode() for name, text in PARENTS.items()}
    where: dict[str, tuple[str, int]] = {}
    for entity, rows in _rows_by_entity().items():
        name = f"{AGENCY}/{AGENCY}_202601_{entity}.csv"
        files[name] = _csv([row for _, row in rows])
        line = 2  # a value with a line break spans two lines: each row is known by its first
        for case, row in rows:
            where[case["id"]] = (name, line)
            line += 1 + sum(value.count("\n") for value in row.values())
    write_landing(folder / "landing", files)
    return ingest_landing(folder / "landing", folder / "warehouse.duckdb"), where


def test_the_corpus_is_large_and_covers_both_sides() -> None:
    identifiers = [c for c in CASES if c["expect"] == IDENTIFIER]
    ordinary = [c for c in CASES if c["expect"] == "accepted" and c.get("entity", "interventions") == "interventions"]
    assert len(CASES) >= 40
    assert len(identifiers) >= 40
    assert len(ordinary) >= 20
    assert len({c["id"] for c in CASES}) == len(CASES)
    assert all(c["expect"] == "accepted" or Reason(c["expect"]) for c in CASES)


def test_the_parents_are_accepted(planted: tuple[Ingested, dict[str, tuple[str, int]]]) -> None:
    ingested, _ = planted
    assert all(ingested.reports[name].status == "accepted" for name in PARENTS)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["id"])
def test_each_planted_row_ends_as_stated(
    planted: tuple[Ingested, dict[str, tuple[str, int]]], case: dict[str, Any]
) -> None:
    ingested, where = planted
    name, line = where[case["id"]]
    quarantine = ingested.quarantine()
    found = [
        (row["reason"], row["column_name"])
        for row in quarantine.iter_rows(named=True)
        if row["_source_file"] == name and row["_source_row"] == line
    ]
    if case["expect"] == "accepted":
        assert found == []
    else:
        assert found == [(case["expect"], case.get("column", case.get("field", "note")))]


@pytest.mark.parametrize("case", [c for c in CASES if c["expect"] == IDENTIFIER], ids=lambda case: case["id"])
def test_a_planted_identifier_leaves_no_trace(
    planted: tuple[Ingested, dict[str, tuple[str, int]]], case: dict[str, Any]
) -> None:
    ingested, _ = planted
    dump = ingested.dump() + "\n".join(r.message for r in ingested.reports.values())
    value = _value(case)
    assert value not in dump
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 8:
        assert digits not in re.sub(r"[^0-9\n]", "", dump.replace(",", "\n"))
