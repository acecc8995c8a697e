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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from threadpoolctl import threadpool_limits

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
        import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime its boosting uses)
    token = _LIMITED.set(limited | wanted)
    try:
        with threadpool_limits(limits=1, user_api="blas" if not openmp else None):
            yield
    finally:
        _LIMITED.reset(token)
