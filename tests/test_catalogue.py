"""The message catalogue and the formats: both languages hold every key, every code the data can hold has words,
no page, figure or report holds a user-facing literal, and numbers, money and dates read as the French write them."""

from __future__ import annotations

import ast
import re
from datetime import date
from pathlib import Path

import pytest

from pipelines.contract import allowed_values, load_contract
from pipelines.impact.spec import COVARIATES, MEAN_OUTCOMES, RATIO_OUTCOMES, SUBGROUP_DIMENSIONS, Design
from pipelines.impact.study import COMPOSITE
from pipelines.presentation import catalogue
from pipelines.presentation.catalogue import LANGUAGES, NATURAL_ORDER, has_label, keys, label, messages, placeholders, t
from pipelines.presentation.formats import day, integer, moment, money, month, number, percent
from pipelines.presentation.verdict import UNIT_KEYS

ROOT = Path(__file__).resolve().parent.parent
QUALITY = ROOT / "quality"


def test_both_languages_hold_the_same_keys_with_the_same_placeholders() -> None:
    french, english = messages("fr"), messages("en")
    assert set(french) == set(english), set(french) ^ set(english)
    assert len(french) > 400
    for key in french:
        assert placeholders(french[key]) == placeholders(english[key]), key
        assert french[key].strip(), key
        assert english[key].strip(), key


def test_an_unknown_key_is_an_error_not_a_guess() -> None:
    with pytest.raises(KeyError):
        t("no.such.key")
    assert label("payer", "a_new_payer") == "a_new_payer"  # a new code never breaks a page


def _contract_codes(entity: str, field: str) -> list[str]:
    return list(allowed_values(load_contract().entity(entity).field(field)) or [])


def _expectation_types() -> list[str]:
    """The Great Expectations expectation types the contract suites use (``quality/``), as results name them."""
    names = set(re.findall(r"\bExpect(?!ation)[A-Z][A-Za-z]+", "".join(p.read_text() for p in QUALITY.glob("*.py"))))
    return sorted(re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in names)


CODES = {
    "referral_source": _contract_codes("episodes", "referral_source"),
    "payer": _contract_codes("episodes", "payer"),
    "cohort": _contract_codes("episodes", "cohort"),
    "agency_model": _contract_codes("agencies", "model"),
    "entity": list(load_contract().entities),
    "expectation": _expectation_types(),
    "gir_band": list(NATURAL_ORDER["gir_band"]),
    "age_band": list(NATURAL_ORDER["age_band"]),
    "period": list(NATURAL_ORDER["period"]),
    "scenario": list(NATURAL_ORDER["scenario"]),
    "covariate": list(COVARIATES),
    "outcome": [*RATIO_OUTCOMES, *MEAN_OUTCOMES, "pre_trend_placebo"],
    "design": list(Design.__args__),  # type: ignore[attr-defined]
    "estimand": ["att", "ate"],
    "dimension": ["all", "region", "departement", *SUBGROUP_DIMENSIONS, "agency", "referral_source", "payer"],
    "check": [
        "treated_episodes", "comparison_episodes", "balance_max_abs_smd", "variance_ratio", "equipoise_share",
        "effective_sample_size_treated", "effective_sample_size_comparison", "negative_controls_estimated",
        "expected_absolute_systematic_error", "pre_trend_placebo", "pre_enrolment_dip", "agencies_per_arm",
        "whole_study_publishable", "estimation",
    ],
    "family": ["admissions", "carer_burden", "ruptures", "delivered_hours", "first_contact"],
    "role": ["funder", "agency", "analyst", "main", "negative_control", "placebo", "subgroup"],
}  # fmt: skip


@pytest.mark.parametrize("kind", list(CODES))
def test_every_code_the_data_holds_has_words_in_both_languages(kind: str) -> None:
    unlabelled = [code for code in CODES[kind] if not has_label(kind, code)]
    assert not unlabelled, (kind, unlabelled)


def test_every_unit_of_the_impact_engine_and_every_study_control_has_words() -> None:
    units = {o.unit for o in RATIO_OUTCOMES.values()} | set(MEAN_OUTCOMES.values())
    units |= {f"{RATIO_OUTCOMES['unplanned_admissions'].unit} (difference-in-differences)"}
    units |= {f"{RATIO_OUTCOMES['unplanned_admissions'].unit} (later minus earlier baseline half)"}  # the placebo
    assert units <= set(UNIT_KEYS), units - set(UNIT_KEYS)
    assert all(key in keys() for key in UNIT_KEYS.values())
    for study in (ROOT / "data" / "studies").glob("*.yaml"):
        assert f"study.{study.stem}.question" in keys(), study.stem
        for control in re.findall(r"^  (admissions_[a-z_]+):", study.read_text(encoding="utf-8"), re.MULTILINE):
            assert f"control.{control}.reason" in keys(), control
            assert has_label("outcome", control), control
    # The engine adds every control together as one more row (the mean systematic error): it has words too.
    assert f"control.{COMPOSITE}.reason" in keys()
    assert has_label("outcome", COMPOSITE)


# --- no user-facing literal outside the catalogue -------------------------------------------------------

USER_FACING = re.compile(r"[A-Za-zÀ-ÿ]{2,}")
LAYOUT_FILES = [
    *sorted((ROOT / "dashboards" / "app_pages").glob("*.py")),
    ROOT / "dashboards" / "streamlit_app.py",
    ROOT / "dashboards" / "figures.py",
    ROOT / "dashboards" / "study_view.py",
    ROOT / "dashboards" / "study_content.py",
    ROOT / "dashboards" / "reports.py",
    ROOT / "dashboards" / "session.py",
]
ALLOWED = {"Parcours", "Parcours · {{ c.title }}"}
"""The product's name is not translated."""


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Docstrings, and the strings that document a constant after it: a bare string statement is never shown.
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
                  and isinstance(node.value, ast.Constant)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            # Words a user could read: letters with a space, a capital or an accent; not a key, code or path.
            readable = USER_FACING.search(text) and (
                " " in text.strip() or re.search(r"[À-ÿ]", text) or re.fullmatch(r"[A-Z][a-z]+", text)
            )
            plotly_template = "%{" in text and not USER_FACING.search(re.sub(r"%\{[^}]*\}|<[^>]*>", "", text))
            if (
                readable
                and not plotly_template
                and text not in ALLOWED
                and not re.fullmatch(r"[#%.,:;/()0-9a-f\-\s]*", text)
            ):
                found.append((node.lineno, text))
    return found


@pytest.mark.parametrize("path", LAYOUT_FILES, ids=lambda p: p.name)
def test_no_page_figure_or_report_holds_a_user_facing_literal(path: Path) -> None:
    allowed_here = {
        # Plotly and CSS vocabulary, fonts and colours: not words a user reads.
        "DejaVu Sans, Arial, sans-serif", "Blues",
        "x domain", "y domain",  # a shape's reference: the plot's whole width or height
        '<p style="font-size:1.6rem;font-weight:600;line-height:1.25;margin:0 0 0.25rem 0">{}</p>',
        # Reasons written to the audit log (records for administrators, never shown on a page).
        "no role in the access map", "no readable access map",
        # An exception's message for the server log; the page shows the catalogue's words instead.
        "PDF export needs Debian's chromium (`make browser` installs it)",
    }  # fmt: skip
    literals = [(line, text) for line, text in _literals(path) if text not in allowed_here]
    assert not literals, literals


def test_the_literal_check_finds_a_literal() -> None:
    assert _literals(Path(__file__)) != []  # this file is full of them: the check can fail


# --- formats ------------------------------------------------------------------------------------------


def test_numbers_money_percentages_and_dates_in_french_and_english() -> None:
    assert money(-345_647.2, "fr") == "\u2212345\u202f647\u00a0€"
    assert money(-345_647.2, "en") == "\u2212€345,647"
    assert day(date(2026, 11, 30), "fr") == "30 nov. 2026"
    assert day("2026-11-30", "en") == "30 Nov 2026"
    assert month(date(2026, 11, 1), "fr") == "nov. 2026"
    assert number(1234.56, 1, "fr") == "1\u202f234,6"
    assert number(-0.5, 2, "en") == "\u22120.50"
    assert integer(272.96666666666664, "fr") == "273"
    assert percent(0.123, 0, "fr") == "12\u00a0%"
    assert percent(0.123, 0, "en") == "12%"
    assert moment("2026-11-30T13:05:00+00:00", "fr") == "30 nov. 2026, 14:05"  # Paris time
    assert number(None, 1, "fr") == "non communiqué"
    assert money(None, "en") == "not shown"


def test_the_language_is_french_unless_english_is_asked_for() -> None:
    assert catalogue.language_of("en") == "en"
    assert catalogue.language_of("EN-gb") == "en"
    assert catalogue.language_of("de") == "fr"
    assert catalogue.language_of(None) == "fr"
    assert LANGUAGES == ("fr", "en")
