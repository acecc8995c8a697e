"""Great Expectations suites, one per entity, built from the data contract.

Each expectation is tagged with its category in ``meta``:

* **conformance**: values have the contract's form (allowed codes, text lengths, columns);
* **completeness**: required values are there and keys are unique;
* **plausibility**: values are believable (ranges, no future dates, dates in order, delivered
  hours mostly within granted hours).

Quarantine already removes rows that break a rule, so on the raw tables these suites confirm
the contract holds for everything stored. A failed conformance or completeness expectation
is an error that blocks the models; a failed plausibility expectation is a warning.

Great Expectations is imported lazily (it costs seconds), runs on pandas frames in an
ephemeral context, and reports counts only: ``partial_unexpected_count`` is 0 and no
unexpected values or rows are returned, so no case value reaches a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pipelines.contract import Contract, Entity, allowed_values

if TYPE_CHECKING:
    import pandas as pd

CATEGORIES = ("conformance", "completeness", "plausibility")
BLOCKING = frozenset({"conformance", "completeness"})
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
PLAUSIBLE_DELIVERY_SHARE = 0.95
"""Delivered hours may exceed granted hours now and then, not in more than 5% of months."""


@dataclass(frozen=True)
class ExpectationOutcome:
    entity: str
    category: str
    expectation: str
    column: str | None
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_percent: float


def expectation_specs(entity: Entity, today: date) -> list[tuple[str, str, dict[str, Any]]]:
    """(category, expectation class name, arguments) for every expectation of an entity's suite."""
    specs: list[tuple[str, str, dict[str, Any]]] = []
    for f in entity.fields:
        allowed = allowed_values(f)
        if allowed is not None and not f.list_separator:
            specs.append(("conformance", "ExpectColumnValuesToBeInSet", {"column": f.name, "value_set": list(allowed)}))
        if f.type == "string":
            specs.append(
                ("conformance", "ExpectColumnValueLengthsToBeBetween", {"column": f.name, "max_value": f.max_length})
            )
        if f.required:
            specs.append(("completeness", "ExpectColumnValuesToNotBeNull", {"column": f.name}))
        if f.min is not None or f.max is not None:
            specs.append(
                (
                    "plausibility",
                    "ExpectColumnValuesToBeBetween",
                    {"column": f.name, "min_value": f.min, "max_value": f.max},
                )
            )
        if f.type in ("date", "month"):
            specs.append(
                (
                    "plausibility",
                    "ExpectColumnValuesToBeBetween",
                    {
                        "column": f.name,
                        "min_value": datetime(1900, 1, 1),
                        "max_value": datetime(today.year, today.month, today.day),
                    },
                )
            )
    key = list(entity.primary_key)
    if len(key) == 1:
        specs.append(("completeness", "ExpectColumnValuesToBeUnique", {"column": key[0]}))
    else:
        specs.append(("completeness", "ExpectCompoundColumnsToBeUnique", {"column_list": key}))
    for earlier, later in entity.date_order:
        specs.append(
            (
                "plausibility",
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": later, "column_B": earlier, "or_equal": True, "ignore_row_if": "either_value_is_missing"},
            )
        )
    if {"hours_granted", "hours_delivered"} <= set(entity.field_names):
        specs.append(
            (
                "plausibility",
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {
                    "column_A": "hours_granted",
                    "column_B": "hours_delivered",
                    "or_equal": True,
                    "mostly": PLAUSIBLE_DELIVERY_SHARE,
                },
            )
        )
    return specs


def build_suite(entity: Entity, today: date) -> Any:
    """The entity's ``ExpectationSuite``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"parcours_{entity.name}")
    for category, kind, arguments in expectation_specs(entity, today):
        suite.add_expectation(getattr(gxe, kind)(**arguments, meta={"category": category}))
    return suite


def _quiet_context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_frames(frames: dict[str, pd.DataFrame], contract: Contract, today: date) -> list[ExpectationOutcome]:
    """Run every entity's suite on its frame; outcomes hold counts and rates only."""
    context = _quiet_context()
    source = context.data_sources.add_pandas("parcours")
    outcomes: list[ExpectationOutcome] = []
    import pandas as pd

    for name, frame in frames.items():
        entity = contract.entity(name)
        dates = [f.name for f in entity.fields if f.type in ("date", "month") and f.name in frame.columns]
        frame = frame.assign(**{c: pd.to_datetime(frame[c]) for c in dates})
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(build_suite(entity, today))
        result = batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite, result_format=RESULT_FORMAT)
        for item in result.results:
            config = item.expectation_config
            kwargs = config.kwargs
            column = kwargs.get("column") or ",".join(
                str(c) for c in (kwargs.get("column_list") or [kwargs.get("column_A"), kwargs.get("column_B")]) if c
            )
            details = item.result or {}
            errored = bool((item.exception_info or {}).get("raised_exception"))
            outcomes.append(
                ExpectationOutcome(
                    entity=name,
                    category=str((config.meta or {}).get("category", "conformance")),
                    expectation=config.type,
                    column=column or None,
                    success=bool(item.success) and not errored,
                    element_count=int(details.get("element_count") or len(frame)),
                    unexpected_count=int(details.get("unexpected_count") or 0),
                    unexpected_percent=float(details.get("unexpected_percent") or 0.0),
                )
            )
    return outcomes
