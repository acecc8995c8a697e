"""The checks of list values (codes separated by ``|``, Zarit items) decide plainly written values with one
regular expression and leave the rest to the item-by-item rule: the verdict must be the rule's, always."""

from __future__ import annotations

import duckdb
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.contract import allowed_values, load_contract
from pipelines.ingest.validate import (
    ZARIT_ITEMS_MOST,
    ZARIT_ITEMS_PLAIN,
    _plainly,
    codes_rule,
    plain_codes,
    zarit_items_rule,
)
from tests.hypothesis_budget import examples


def _conditions() -> tuple[str, ...]:
    allowed = allowed_values(load_contract().entity("persons").field("main_conditions"))
    assert allowed is not None
    return allowed


CONDITIONS = _conditions()
# Codes a contract could hold that the split or the strip changes: never accepted as written.
AWKWARD = ("plain", " padded", "trailing\u00a0", "with|bar", "a-b (c)", "é.")


def _verdicts(values: list[str], decided: str, rule: str) -> list[tuple[str, bool | None, bool | None]]:
    con = duckdb.connect()
    try:
        con.execute("create table t (v varchar)")
        if values:
            con.executemany("insert into t values (?)", [(v,) for v in values])
        return con.execute(f"select v, {decided}, {rule} from t").fetchall()
    finally:
        con.close()


def _disagreements(values: list[str], plain: str | None, rule: str) -> list[tuple[str, bool | None, bool | None]]:
    return [row for row in _verdicts(values, _plainly("v", plain, rule), rule) if row[1] != row[2]]


SCORES = ["0", "1", "2", "3", "4", "0.5", "3,5", "4.0", "4,0", "4.5", "5", "2.50", "1.0", "-1", "+2", "1e0", "nan",
          "", " 2", "2 ", "\u00a03", "2\t", "x", "0.25", "3.", ".5", "04"]  # fmt: skip


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.lists(st.sampled_from(SCORES), min_size=1, max_size=ZARIT_ITEMS_MOST + 3), max_size=40))
@example([["2"] * 22, ["2"] * 23, ["4.5"], ["4,0", "", "3,5"], [""], ["", ""], [" 2", "3 "]])
def test_zarit_items_decided_plainly_as_the_rule_decides(lists: list[list[str]]) -> None:
    values = ["|".join(items) for items in lists]
    assert _disagreements(values, ZARIT_ITEMS_PLAIN, zarit_items_rule("v")) == []


def test_plainly_written_zarit_items_are_the_common_ones() -> None:
    plain = ["2|2|2|1|0", "|".join(["4"] * 22), "0,5|3.5||4.0"]
    rows = _verdicts(plain, f"regexp_full_match(v, '{ZARIT_ITEMS_PLAIN}')", zarit_items_rule("v"))
    assert [(plainly, ruled) for _, plainly, ruled in rows] == [(True, True)] * 3
    refused = ["|".join(["4"] * 23), "4.5", "5|1", " 2|3"]
    rows = _verdicts(refused, f"regexp_full_match(v, '{ZARIT_ITEMS_PLAIN}')", zarit_items_rule("v"))
    assert [plainly for _, plainly, _ in rows] == [False] * 4


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([*CONDITIONS, *AWKWARD, "", " dementia", "copd ", "Dementia", "flu", "dementia|"]),
                 min_size=1, max_size=5),
        max_size=30,
    )
)  # fmt: skip
@example([["dementia", "copd"], ["dementia", "flu"], ["with", "bar"], [" padded"], ["padded"], ["a-b (c)", "é."]])
def test_lists_of_codes_decided_plainly_as_the_rule_decides(lists: list[list[str]]) -> None:
    values = ["|".join(items) for items in lists]
    for allowed in (CONDITIONS, (*CONDITIONS, *AWKWARD)):
        assert _disagreements(values, plain_codes(allowed, "|"), codes_rule("v", allowed, "|")) == []


def test_codes_the_split_or_the_strip_changes_are_left_to_the_rule() -> None:
    pattern = plain_codes(AWKWARD, "|")
    assert pattern is not None
    rows = _verdicts(["with|bar", " padded", "plain|a-b (c)|é."], f"regexp_full_match(v, '{pattern}')", "true")
    assert [plainly for _, plainly, _ in rows] == [False, False, True]
    assert plain_codes((" padded", "with|bar"), "|") is None
    # A separator of several characters can overlap a code's end (a reviewer's case: 'a|||b' splits as 'a', '|b').
    assert (
        _disagreements(["a|||b", "xababay"], plain_codes(("a|", "b"), "||"), codes_rule("v", ("a|", "b"), "||")) == []
    )
    assert plain_codes(("a|", "b"), "||") is None
