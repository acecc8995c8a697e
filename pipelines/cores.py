"""How many threads a stage runs side by side: a variable's whole number, else the cores this process may use."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or ``taskset`` narrows)."""
    return max(1, len(os.sched_getaffinity(0)))


def configured_threads(variable: str) -> int:
    """``variable``'s whole number of threads (at least one), else ``usable_cores()``; a clear error when
    it is set to something else."""
    configured = os.environ.get(variable, "").strip()
    if not configured:
        return usable_cores()
    try:
        return max(1, int(configured))
    except ValueError:
        raise ValueError(f"{variable} must be a whole number of threads, not {configured!r}") from None
