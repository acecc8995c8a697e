"""Asset checks on the outcome tables: plausibility and reconciliation with raw counts.

Each check is a query counting violating rows (never returning them), so results carry
counts only.
"""

from dataclasses import dataclass

import dagster as dg
import duckdb

from pipelines import warehouse


@dataclass(frozen=True)
class ModelCheck:
    asset: str
    name: str
    description: str
    violations_sql: str
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


BREAKDOWNS_ADD_UP = """
    with totals as (
        select dimension, cohort, period, sum(unplanned_admissions) as admissions, sum(person_days) as days
        from mart_hospital_outcomes group by dimension, cohort, period
    )
    select count(*) from totals as part
    join totals as whole
        on whole.dimension = 'all' and part.cohort = whole.cohort and part.period = whole.period
    where part.admissions <> whole.admissions or part.days <> whole.days
"""

MODEL_CHECKS = (
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
    ModelCheck("mart_hospital_outcomes", "reconciles_with_the_fact_table",
               "The federation total of unplanned admissions equals the fact table's.",
               "select count(*) from (select sum(unplanned_admissions) as n from mart_hospital_outcomes "
               "where dimension = 'all') as mart where mart.n <> (select count(*) from fct_hospital_admissions "
               "where not is_planned)"),
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


def check_result(con: duckdb.DuckDBPyConnection, check: ModelCheck) -> dg.AssetCheckResult:
    """Run by the models' step, right after the models, on its connection."""
    violations = int(warehouse.scalar(con, check.violations_sql) or 0)
    return dg.AssetCheckResult(
        asset_key=check.asset,
        check_name=check.name,
        passed=violations == 0,
        severity=check.severity,
        metadata={"violating_rows": violations},
    )
