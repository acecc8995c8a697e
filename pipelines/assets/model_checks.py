"""Asset checks on the outcome tables: plausibility and reconciliation with raw counts.

Each check is a query counting violating rows (never returning them), so results carry
counts only.
"""

from dataclasses import dataclass

import dagster as dg

from pipelines.engines import Engine


@dataclass(frozen=True)
class ModelCheck:
    asset: str
    name: str
    description: str
    violations_sql: str
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


BREAKDOWNS_ADD_UP = """
    with totals as materialized (
        select dimension, cohort, period, sum(unplanned_admissions) as admissions, sum(person_days) as days
        from mart_hospital_outcomes group by dimension, cohort, period
    )
    select count(*) from totals as part
    join totals as whole
        on whole.dimension = 'all' and part.cohort = whole.cohort and part.period = whole.period
    where part.admissions <> whole.admissions or part.days <> whole.days
"""


def counted_once(table: str, keys: str) -> str:
    """Rows (by ``keys``) of a fact's before and after periods not counted exactly once in totals (is_attributed).

    ``table`` and ``keys`` are identifiers fixed in this module, never values.
    """
    return (
        f"select count(*) from (select {keys}, sum(case when is_attributed then 1 else 0 end) as counted "
        f"from {table} where period in ('before', 'after') group by {keys}) as placed where counted <> 1"
    )


DISTINCT_ADMISSIONS = """
    with mart as (
        select period, sum(unplanned_admissions) as admissions
        from mart_hospital_outcomes where dimension = 'all' group by period
    ),
    fact as (
        select period, count(distinct event_id) as admissions
        from fct_hospital_admissions where not is_planned and period in ('before', 'after') group by period
    )
    select count(*) from fact full join mart on fact.period = mart.period
    where coalesce(fact.admissions, 0) <> coalesce(mart.admissions, 0)
"""

SEGMENTS_OVERLAP = """
    select count(*) from int_attributed_time as first
    join int_attributed_time as later
        on first.person_key = later.person_key and first.period = later.period
        and first.segment_start < later.segment_start and first.segment_end >= later.segment_start
"""

WINDOW_ENDS_UNOWNED = """
    select count(*) from int_person_time as windows
    where not exists (
        select 1 from int_attributed_time as segments
        where segments.person_key = windows.person_key and segments.period = windows.period
            and windows.period_start between segments.segment_start and segments.segment_end
    ) or not exists (
        select 1 from int_attributed_time as segments
        where segments.person_key = windows.person_key and segments.period = windows.period
            and windows.period_end between segments.segment_start and segments.segment_end
    )
"""

DEATHS_ONCE = """
    select count(*) from (
        select person_key, sum(case when death_attributed then 1 else 0 end) as counted
        from fct_episodes where death_date is not null group by person_key
    ) as deaths where counted <> 1
"""

MODEL_CHECKS = (
    ModelCheck("int_events", "every_event_received_is_kept_or_merged",
               "Events received = events kept + copies merged into them (no event lost or counted twice).",
               "select count(*) from (select (select count(*) from stg_events) as received, "
               "(select coalesce(sum(copies), 0) from int_events) as kept) as totals where received <> kept"),
    ModelCheck("int_attributed_time", "segments_never_overlap",
               "No day of a person's period is owned by two episodes.", SEGMENTS_OVERLAP),
    ModelCheck("int_attributed_time", "every_window_is_owned",
               "The first and last day of every episode window are owned by an episode.", WINDOW_ENDS_UNOWNED),
    ModelCheck("int_person_time", "no_negative_person_time", "Person-days are positive.",
               "select count(*) from int_person_time where person_days <= 0"),
    ModelCheck("fct_hospital_admissions", "no_negative_stays", "No discharge before its admission.",
               "select count(*) from fct_hospital_admissions where discharge_date < admission_date"),
    ModelCheck("fct_hospital_admissions", "each_admission_once_per_episode_period",
               "An admission is counted at most once per episode and period.",
               "select count(*) from (select event_id, episode_id, period from fct_hospital_admissions "
               "group by all having count(*) > 1)"),
    ModelCheck("fct_hospital_admissions", "reconciles_with_raw_events",
               "Admissions counted are among the admissions received (no join multiplies them).",
               "select count(*) from (select distinct event_id from fct_hospital_admissions) as counted "
               "where event_id not in (select event_id from raw_events where event_type = 'hospital_admission')"),
    ModelCheck("mart_hospital_outcomes", "every_breakdown_adds_up",
               "Each breakdown's unplanned admissions and person-days add up to the federation total.",
               BREAKDOWNS_ADD_UP),
    ModelCheck("fct_hospital_admissions", "each_admission_counted_once_per_period",
               "Each admission in a before or after window is counted in totals exactly once per period.",
               counted_once("fct_hospital_admissions", "event_id, period")),
    ModelCheck("fct_emergency_visits", "each_visit_counted_once_per_period",
               "Each emergency visit in a before or after window is counted in totals exactly once per period.",
               counted_once("fct_emergency_visits", "event_id, period")),
    ModelCheck("fct_ruptures", "each_rupture_counted_once_per_period",
               "Each rupture is counted in totals exactly once per period.",
               counted_once("fct_ruptures", "rupture_type, rupture_id, period")),
    ModelCheck("fct_service_delivery", "each_month_counted_once_per_period",
               "Each person's month of hours is counted in totals exactly once per period.",
               counted_once("fct_service_delivery", "person_key, month_start, period")),
    ModelCheck("fct_episodes", "each_death_counted_once",
               "A person's death during follow-up is counted under exactly one of their episodes.", DEATHS_ONCE),
    ModelCheck("fct_carer_load", "each_baseline_assessment_counted_once",
               "A baseline assessment shared by overlapping episodes is counted once.",
               "select count(*) from (select baseline_assessment_id from fct_carer_load where is_attributed "
               "and baseline_assessment_id is not null group by baseline_assessment_id having count(*) > 1)"),
    ModelCheck("mart_hospital_outcomes", "reconciles_with_distinct_admissions",
               "Each period's federation total of unplanned admissions equals the distinct admissions of the facts.",
               DISTINCT_ADMISSIONS),
    ModelCheck("mart_hospital_outcomes", "rates_in_range",
               "Rates are between 0 and 20,000 per 1,000 person-years (20 a year).",
               "select count(*) from mart_hospital_outcomes where unplanned_rate_per_1000py < 0 "
               "or unplanned_rate_per_1000py > 20000 or readmission_rate_per_1000py < 0",
               dg.AssetCheckSeverity.WARN),
    ModelCheck("fct_ruptures", "no_negative_durations",
               "Days without help, to detection and to repair are not negative.",
               "select count(*) from fct_ruptures where days_without_help < 0 or days_to_detection < 0 "
               "or days_to_repair < 0", dg.AssetCheckSeverity.WARN),
    ModelCheck("fct_carer_load", "zarit_in_range", "Zarit scores of the 22-item form are within 0-88.",
               "select count(*) from fct_carer_load where zarit_baseline not between 0 and 88 "
               "or zarit_6m not between 0 and 88 or zarit_12m not between 0 and 88"),
    ModelCheck("fct_episodes", "timeliness_not_negative", "No first contact or plan before the referral.",
               "select count(*) from fct_episodes where days_to_first_contact < 0 or days_to_plan < 0",
               dg.AssetCheckSeverity.WARN),
    ModelCheck("mart_service_delivery", "hours_not_negative", "Hours granted, delivered and unused are not negative.",
               "select count(*) from mart_service_delivery where hours_granted < 0 or hours_delivered < 0 "
               "or hours_unused < 0"),
    ModelCheck("mart_caseload", "caseload_plausible", "Caseloads stay under 200 episodes per full-time care manager.",
               "select count(*) from mart_caseload where episodes_per_fte > 200 or active_episodes < 0",
               dg.AssetCheckSeverity.WARN),
)  # fmt: skip


def check_spec(check: ModelCheck) -> dg.AssetCheckSpec:
    """ERROR checks block: a failed one stops everything downstream, the serving snapshot included."""
    return dg.AssetCheckSpec(
        check.name,
        asset=check.asset,
        description=check.description,
        blocking=check.severity == dg.AssetCheckSeverity.ERROR,
    )


def check_result(engine: Engine, check: ModelCheck) -> dg.AssetCheckResult:
    """Run by the models' step, right after the models, on its engine."""
    violations = int(engine.scalar(check.violations_sql) or 0)
    return dg.AssetCheckResult(
        asset_key=check.asset,
        check_name=check.name,
        passed=violations == 0,
        severity=check.severity,
        metadata={"violating_rows": violations},
    )
