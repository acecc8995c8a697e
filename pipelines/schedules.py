"""The quarterly cycle: a release of the quarter just ended, once agencies have had time to send it.

Agencies send a quarter's export in the fortnight after it ends; analysts check what arrived (the
operations page lists what is late); on the 20th of January, April, July and October at 06:00 (Paris),
the schedule publishes the release of the quarter before (``2026-Q3`` on 20 October 2026), with the data
cut-off at the quarter's last day. A release name is used once: a run of the same quarter again
(a corrected export arrived late) is published by an analyst as ``2026-Q3.2`` (``parcours run``).
"""

from datetime import date
from typing import Any

import dagster as dg

from pipelines.operations.audit_retention import purge_audit_log, retention_days
from pipelines.operations.releases import previous_quarter_end, quarter_of
from pipelines.resources import ParcoursResource
from pipelines.sensors import PUBLISH_JOB

QUARTERLY_CRON = "0 6 20 1,4,7,10 *"
TIMEZONE = "Europe/Paris"


def quarterly_run_config(day: date) -> tuple[str, dict[str, Any]]:
    """The release a schedule run on ``day`` publishes, and its run configuration (name and cut-off)."""
    cutoff = previous_quarter_end(day)
    name = quarter_of(cutoff)
    config = {"resources": {"parcours": {"config": {"release": name, "data_cutoff": cutoff.isoformat()}}}}
    return name, config


@dg.schedule(
    job_name=PUBLISH_JOB,
    cron_schedule=QUARTERLY_CRON,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Publishes the release of the quarter just ended (data cut-off: its last day), on the 20th of "
    "the month after it.",
)
def quarterly_release(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time
    name, config = quarterly_run_config(scheduled.date() if scheduled else date.today())
    return dg.RunRequest(run_key=name, run_config=config, tags={"parcours/release": name})


AUDIT_JOB = "audit_log_retention"


@dg.op(description="Deletes the dashboards' audit entries older than the retention (12 months by default).")
def purge_audit(context: dg.OpExecutionContext, parcours: ParcoursResource) -> None:
    kept, removed = purge_audit_log(parcours.settings().audit_log, retention_days())
    context.log.info(f"audit log: {removed} entries removed, {kept} kept")


@dg.job(name=AUDIT_JOB, description="The audit log's retention (CNIL: 6 to 12 months).")
def audit_log_retention() -> None:
    purge_audit()


audit_retention_schedule = dg.ScheduleDefinition(
    name="daily_audit_retention",
    job=audit_log_retention,
    cron_schedule="30 3 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
