"""Disclosure control: small cells suppressed, and no suppressed cell recoverable by differencing."""

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards.disclosure import MIN_CELL, peer_group_problem, protect_breakdown, suppress_small_cells


def test_suppression_blanks_small_counts_and_what_is_derived_from_them() -> None:
    frame = pl.DataFrame({"persons": [0, 5, 11, 200], "events": [0, 30, 4, 40], "rate": [0.0, 1.0, 2.0, 3.0]})
    out = suppress_small_cells(frame, ["persons", "events"], {"rate": ["persons", "events"]})
    assert out["persons"].to_list() == [0, None, 11, 200]
    assert out["events"].to_list() == [0, 30, None, 40]
    assert out["rate"].to_list() == [0.0, None, None, 3.0]


def test_one_small_cell_takes_the_next_smallest_with_it() -> None:
    # Total 160: hiding only B (4) would leave it as 160 - 100 - 40 - 12 = 4.
    frame = pl.DataFrame({"level": ["A", "B", "C", "D"], "persons": [100, 4, 40, 12], "rate": [1.0, 2.0, 3.0, 4.0]})
    out = protect_breakdown(frame, ["persons"], [], ["rate"])
    assert out["persons"].to_list() == [100, None, 40, None]
    assert out["rate"].to_list() == [1.0, None, 3.0, None]


def _recoverable(original: np.ndarray, hidden: np.ndarray) -> bool:
    """Can an attacker who knows the group's totals learn a hidden cell, or a small sum of hidden cells?"""
    if not hidden.any():
        return False
    for column in range(original.shape[1]):
        sums = original[hidden, column].sum()
        if hidden.sum() == 1 and original[hidden, column].sum() > 0:
            return True  # total minus the visible cells is that cell
        if 0 < sums < MIN_CELL:
            return True  # the hidden cells together describe fewer than 11
    return False


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=24))
def test_no_suppressed_cell_can_be_recovered_from_the_totals(cells: list[tuple[int, int, int]]) -> None:
    frame = pl.DataFrame(cells, schema=["group", "persons", "events"], orient="row")
    out = protect_breakdown(frame, ["persons", "events"], ["group"])
    for group in frame["group"].unique():
        rows = (frame["group"] == group).to_numpy()
        original = frame.filter(rows).select("persons", "events").to_numpy()
        hidden = out.filter(rows)["suppressed"].to_numpy()
        visible = out.filter(rows).filter(~pl.col("suppressed")).select("persons", "events").to_numpy()
        assert ((visible == 0) | (visible >= MIN_CELL)).all()  # no small cell shown
        if hidden.all():
            continue  # nothing visible to subtract
        assert not _recoverable(original, hidden), (original.tolist(), hidden.tolist())


def test_a_peer_group_needs_three_others_none_dominant() -> None:
    assert peer_group_problem("A", {"A": 10, "B": 10, "C": 10}) == "fewer than 3 other agencies to compare with"
    assert "85%" in (peer_group_problem("A", {"A": 5, "B": 900, "C": 50, "D": 50}) or "")
    assert peer_group_problem("A", {"A": 5, "B": 40, "C": 30, "D": 30}) is None
