"""The studies' arithmetic on one thread: BLAS (numpy's and scipy's OpenBLAS) and scikit-learn's OpenMP.

A study is thousands of small fits: a logistic regression on a few thousand cells refitted for each
of 1,000 bootstrap resamples, gradient boosting on cell totals fold by fold. On matrices that small a
second BLAS or OpenMP thread costs more in start-up and contention than it gains, and on a busy
2-core machine far more: the demo's cumulative-incidence bootstrap took 34 ms of CPU per logistic
refit with OpenBLAS's two threads against 2 ms with one, and the boosting fits of a cross-fitted study
14 s with two OpenMP threads against 2.5 s with one (``docs/benchmarks-notes.md``).

The limit is taken once per study (``threadpool_limits`` scans the process's loaded libraries, about
0.1 s in a pipeline process) and nested calls cost nothing. Threads change no figure: OpenBLAS splits
a product's output between its threads, not the sums that make each entry.

The cores are used by running **independent fits side by side** instead (``map_on_cores``): the folds of
a cross-fitted study are five fits that share nothing, each on one thread, and scikit-learn's boosting
releases the GIL while it builds its histograms. At 400,000 rows two boosting fits took 16.0 s one after
the other and 8.0 s side by side, with the very same predictions (``docs/benchmarks-notes.md``). OpenMP's
thread count is a property of the calling thread, not of the process, so each worker limits its own.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from threadpoolctl import ThreadpoolController, threadpool_limits

from pipelines.cores import configured_threads

Item = TypeVar("Item")
Result = TypeVar("Result")

THREADS_VARIABLE = "PARCOURS_STUDY_THREADS"
"""How many fits a study runs side by side; by default as many as the cores this process may use. A run
of several study processes at once (the validation's workers) shares the cores out through it."""

_LIMITED: ContextVar[frozenset[str]] = ContextVar("limited", default=frozenset())
"""What is already on one thread in this context: ``"blas"``, and ``"openmp"`` once scikit-learn is loaded."""


@contextmanager
def single_threaded(openmp: bool = False) -> Iterator[None]:
    """BLAS on one thread, and scikit-learn's OpenMP too with ``openmp`` (which loads scikit-learn first,
    so that the limit reaches its runtime). A no-op inside a context that already limits as much."""
    wanted = frozenset({"blas", "openmp"} if openmp else {"blas"})
    limited = _LIMITED.get()
    if wanted <= limited:
        yield
        return
    if openmp:
        import_boosting()  # loads the OpenMP runtime its boosting uses
    token = _LIMITED.set(limited | wanted)
    try:
        with threadpool_limits(limits=1, user_api="blas" if not openmp else None):
            yield
    finally:
        _LIMITED.reset(token)


def import_boosting() -> None:
    """Import ``sklearn.ensemble`` (its gradient boosting), without the pandas it would import for nothing.

    scikit-learn imports pandas whenever it is installed (``sklearn.utils.fixes``: ``try: import pandas``),
    to recognise data frames it is given; the studies give it numpy arrays only. That import was 0.34 s of
    scikit-learn's 0.51 s in a pipeline process, which imports pandas for nothing else, so pandas is made
    unimportable while scikit-learn loads (its optional import then finds none) and importable again at
    once: whatever imports pandas later gets it, and scikit-learn asks ``sys.modules`` whether a given object
    is a pandas frame. When pandas is loaded already, or scikit-learn is, nothing is hidden."""
    if "sklearn.ensemble" in sys.modules:
        return
    hidden = "pandas" not in sys.modules
    if hidden:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # None in sys.modules: ``import pandas`` fails
    try:
        import sklearn.ensemble  # noqa: F401
    finally:
        if hidden and "pandas" in sys.modules and sys.modules["pandas"] is None:
            del sys.modules["pandas"]


def import_study_libraries() -> None:
    """What the studies load on their first fit (scikit-learn's boosting, which brings scipy's statistics),
    loaded now by a caller whose thread would otherwise only wait: the run's ingestion while the suites'
    process validates (0.6 s of the demo's run, out of its studies and its start). Loaded already: nothing."""
    import_boosting()
    import scipy.stats  # noqa: F401  (scikit-learn loads it today; the calibration needs it whatever it does)


def study_threads() -> int:
    """How many independent fits may run side by side: ``PARCOURS_STUDY_THREADS``, else the usable cores."""
    return configured_threads(THREADS_VARIABLE)


def share_cores(processes: int) -> None:
    """In one of ``processes`` worker processes started together (a ``ProcessPoolExecutor``'s initializer):
    its studies run as many fits side by side as its share of the cores, unless the variable says already."""
    if not os.environ.get(THREADS_VARIABLE, "").strip():
        os.environ[THREADS_VARIABLE] = str(max(1, study_threads() // max(1, processes)))


SIDE_BY_SIDE_FROM_ROWS = 20_000
"""The rows a study's fits read from which they run side by side. Below, the threads' hand-offs and their
contention for the interpreter cost more than they save: on the demo federation (3,000 persons) the four
studies took as long on two threads as on one, for a quarter more CPU; at 100,000 persons a quarter less
time (``docs/benchmarks-notes.md``)."""


def map_on_cores(work: Callable[[Item], Result], items: Iterable[Item], rows: int) -> Iterator[Result]:
    """``work(item)`` for each item, in the items' order, the items side by side on up to ``study_threads()``
    threads when ``rows`` (the rows the work reads) reach ``SIDE_BY_SIDE_FROM_ROWS``, else one after the other
    in the calling thread.

    The items are taken from ``items`` one at a time, in order and in the calling thread, a few ahead of
    the results (so a generator that draws random numbers draws them in the same order as a loop would,
    and a long stream of items is never all held at once). Each worker runs with OpenMP on one thread (the
    caller's BLAS limit is process-wide and holds already). The first item's error, in order, is the one
    raised. ``work`` must not share mutable state between items.
    """
    workers = study_threads() if rows >= SIDE_BY_SIDE_FROM_ROWS else 1
    if workers <= 1:
        yield from (work(item) for item in items)
        return
    controller = ThreadpoolController()

    def one(item: Item) -> Result:
        with controller.limit(limits=1, user_api="openmp"):
            return work(item)

    pending: deque[Future[Result]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="study-fit") as pool:
        try:
            for item in items:
                pending.append(pool.submit(one, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # an item failed (or the caller stopped early): nothing waiting starts
                future.cancel()
