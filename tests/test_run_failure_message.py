"""What parcours run says when a step fails: the cause, not the framework's wrapper."""

import dagster as dg

from pipelines.run import _failure_message


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=1, delay=0))
def flaky() -> None:
    raise OSError("the working database is locked by another writer")


def test_a_step_that_used_up_its_retries_says_what_went_wrong() -> None:
    result = dg.materialize([flaky], raise_on_error=False)
    (event,) = result.get_step_failure_events()
    assert _failure_message(event) == "OSError: the working database is locked by another writer"
