"""The quarterly cycle: a release of the quarter just ended, once agencies have had time to send it.

Agencies send a quarter's export in the fortnight after it ends; analysts check what arrived (the
operations page lists what is late); on the 20th of January, April, July and October at 06:00 (Paris),
the schedule publishes the release of the quarter before (``2026-Q3`` on 20 October 2026), with the data
cut-off at the quarter's last day. A release name is used once: a run of the same quarter again
(a corrected export arrived late) is published by an analyst as ``2026-Q3.2`` (``parcours run``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg

from pipelines.operations.releases import previous_quarter_end, quarter_of
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
