"""The studies' arithmetic runs on one BLAS/OpenMP thread, and the limit is lifted afterwards; independent
fits run side by side (``map_on_cores``) and give the same figures as one after the other."""

import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from pipelines.impact import threads as threads_module
from pipelines.impact.crossfit import (
    EffectOnTreated,
    Learners,
    crossfit_both,
    crossfit_outcome,
    crossfit_propensity,
)
from pipelines.impact.did import Change, did_on_change, did_on_changes
from pipelines.impact.resampling import batched_bootstrap_draws, bootstrap_draws
from pipelines.impact.threads import (
    SIDE_BY_SIDE_FROM_ROWS,
    THREADS_VARIABLE,
    map_on_cores,
    share_cores,
    single_threaded,
    study_threads,
)
from pipelines.impact.weights import WeightRule

Computed = TypeVar("Computed")


def _threads(api: str) -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == api}


def test_one_thread_inside_and_the_previous_limit_after() -> None:
    with threadpool_limits(limits=2):
        before = _threads("blas")
        with single_threaded():
            assert _threads("blas") == {1}
            with single_threaded():  # nested: nothing more to do
                assert _threads("blas") == {1}
        assert _threads("blas") == before


def test_scikit_learn_loads_without_pandas_and_pandas_stays_importable() -> None:
    # In a fresh interpreter, as a pipeline process: the boosting loads, pandas not with it, and whatever asks
    # for pandas afterwards gets it (scikit-learn's optional import hidden for that import only).
    probe = (
        "import sys\n"
        "from pipelines.impact.threads import import_boosting\n"
        "import_boosting()\n"
        "assert 'sklearn.ensemble' in sys.modules\n"
        "assert not any(m == 'pandas' or m.startswith('pandas.') for m in sys.modules), 'pandas loaded'\n"
        "import pandas\n"
        "from sklearn.ensemble import HistGradientBoostingRegressor\n"
        "frame = pandas.DataFrame({'a': [0.0, 1.0] * 20})\n"
        "model = HistGradientBoostingRegressor(max_iter=2).fit(frame, frame['a'])\n"
        "assert list(model.feature_names_in_) == ['a']  # a data frame, recognised as one\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_openmp_reaches_scikit_learn_runtime() -> None:
    with threadpool_limits(limits=2), single_threaded(), single_threaded(openmp=True):
        assert _threads("openmp") == {1}
        assert _threads("blas") == {1}


def test_results_come_back_in_order_from_several_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    seen: set[int] = set()

    def work(item: int) -> int:
        seen.add(threading.get_ident())
        return item * item

    assert list(map_on_cores(work, iter(range(40)), rows=SIDE_BY_SIDE_FROM_ROWS)) == [i * i for i in range(40)]
    assert threading.get_ident() not in seen  # the work ran on the workers, not in the caller


def test_small_work_stays_in_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_VARIABLE, "4")
    found = list(map_on_cores(lambda _: threading.get_ident(), range(5), rows=SIDE_BY_SIDE_FROM_ROWS - 1))
    assert found == [threading.get_ident()] * 5


def test_each_worker_runs_openmp_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime)

    monkeypatch.setenv(THREADS_VARIABLE, "2")
    with threadpool_limits(limits=2, user_api="openmp"):
        found = list(map_on_cores(lambda _: _threads("openmp"), range(4), rows=10**6))
    assert found == [{1}] * 4


def test_the_first_error_in_order_is_raised_and_nothing_waiting_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_VARIABLE, "2")
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        if item >= 3:
            raise ValueError(f"item {item}")
        return item

    with pytest.raises(ValueError, match="item 3"):
        list(map_on_cores(work, range(100), rows=10**6))
    assert max(started) < 10


def test_the_thread_count_comes_from_the_environment_or_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert study_threads() >= 1
    monkeypatch.setenv(THREADS_VARIABLE, "0")
    assert study_threads() == 1
    monkeypatch.setenv(THREADS_VARIABLE, "two")
    with pytest.raises(ValueError, match="whole number"):
        study_threads()


def test_processes_started_together_share_the_cores_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    cores = study_threads()
    share_cores(2)
    assert study_threads() == max(1, cores // 2)
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    share_cores(2)  # what the analyst set stays
    assert study_threads() == 3


def _on(threads: int, monkeypatch: pytest.MonkeyPatch, compute: Callable[[], Computed]) -> Computed:
    """``compute()`` with ``threads`` side by side, small as the test's data are."""
    monkeypatch.setenv(THREADS_VARIABLE, str(threads))
    monkeypatch.setattr(threads_module, "SIDE_BY_SIDE_FROM_ROWS", 0)
    return compute()


@pytest.mark.parametrize("learner", ["boosting", "parametric"])
def test_cross_fitting_gives_the_same_predictions_on_one_thread_or_several(
    learner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    n = 3_000
    x = np.column_stack([rng.integers(60, 100, n), rng.integers(0, 2, n), rng.poisson(0.8, n)]).astype(float)
    t = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] - 80) / 10))).astype(int)
    exposure = rng.uniform(0.25, 1.0, n)
    y = rng.poisson(0.4 * exposure * (1 + x[:, 2])).astype(float)
    settings = Learners(learner=learner, folds=5, seed=3, max_iter=20)  # type: ignore[arg-type]

    def nuisances() -> list[tuple[np.ndarray, np.ndarray]]:
        """Propensity then outcome, and both fitted together."""
        fitted = crossfit_propensity(t, x, settings)
        together, m0 = crossfit_both(y, exposure, t, x, settings, "poisson")
        assert np.array_equal(together.fold, fitted.fold)
        return [(fitted.propensity, crossfit_outcome(y, exposure, t, x, fitted, "poisson")), (together.propensity, m0)]

    reference = _on(1, monkeypatch, nuisances)[0]
    for ps, m0 in [*_on(1, monkeypatch, nuisances), *_on(3, monkeypatch, nuisances)]:
        assert np.array_equal(ps, reference[0])
        assert np.array_equal(m0, reference[1])


@pytest.mark.parametrize("little", [False, True])
def test_bootstrap_draws_are_the_same_on_one_thread_or_several(little: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    n = 12_000
    t = (rng.random(n) < 0.3).astype(int)
    y = rng.normal(size=n) + t

    def mean_difference(draws: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
        out = []
        for rows, weights in draws:
            w = np.ones(rows.shape[0]) if weights is None else weights
            drawn_t = t[rows]
            out.append(np.average(y[rows], weights=w * drawn_t) - np.average(y[rows], weights=w * (1 - drawn_t)))
        return np.array(out)

    point = mean_difference([(np.arange(n), None)])[0]

    def draws() -> tuple[np.ndarray, np.ndarray]:
        batched = batched_bootstrap_draws(t, mean_difference, np.asarray(point), 230, seed=4, little=little, batch=30)
        single = bootstrap_draws(t, lambda r, w: float(mean_difference([(r, w)])[0]), point, 230, 4, little)
        return batched, single

    one = _on(1, monkeypatch, draws)
    several = _on(2, monkeypatch, draws)
    assert np.array_equal(one[0], several[0])
    assert np.array_equal(one[1], several[1])
    assert np.array_equal(one[0], one[1])  # the batch size changes no draw
    assert np.std(one[0]) > 0


@pytest.mark.parametrize("learner", ["boosting", "parametric"])
def test_designs_in_one_stream_give_what_one_after_the_other_gives(
    learner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DiD study's designs fitted in one stream (``did_on_changes``): the same effects and nuisances as
    ``did_on_change`` design after design, reusing propensity scores and with a parametric control, on one
    thread and on three."""
    rng = np.random.default_rng(11)
    n = 2_000
    x = np.column_stack([rng.integers(60, 100, n), rng.integers(0, 2, n)]).astype(float)
    t = (rng.random(n) < 0.4).astype(int)
    years = rng.uniform(0.3, 1.0, n)
    by_month = rng.poisson(0.2 * (1 + x[:, 1:2]), (n, 12)).astype(float)
    after = rng.poisson(2.0 * years).astype(float)
    settings = Learners(learner=learner, folds=5, seed=2, max_iter=15)  # type: ignore[arg-type]
    rule = WeightRule(max_propensity=0.95)
    main_before, early, late = by_month[:, 3:].sum(axis=1), by_month[:, 8:].sum(axis=1), by_month[:, 3:8].sum(axis=1)
    late_years = np.full(n, 5 / 12)
    control_after = rng.poisson(0.1 * years).astype(float)

    def one_after_the_other() -> list[tuple[EffectOnTreated, np.ndarray]]:
        main, nuisance, _ = did_on_change(main_before, 0.75, after, years, t, x, settings, None, rule)
        placebo, placebo_nuisance, _ = did_on_change(early, 4 / 12, late, late_years, t, x, settings, None, rule)
        dip, _, _ = did_on_change(early, 4 / 12, late, late_years, t, x, settings, placebo_nuisance, rule)
        linear = replace(nuisance, settings=replace(nuisance.settings, learner="parametric"))
        control, _, _ = did_on_change(early, 0.75, control_after, years, t, x, settings, linear, rule)
        return [(e, n.propensity) for e, n in ((main, nuisance), (placebo, placebo_nuisance), (dip, placebo_nuisance),
                                               (control, linear))]  # fmt: skip

    def in_one_stream() -> list[tuple[EffectOnTreated, np.ndarray]]:
        changes = [
            Change(main_before, 0.75, after, years),
            Change(early, 4 / 12, late, late_years),
            Change(early, 4 / 12, late, late_years, propensity_from=1),
            Change(early, 0.75, control_after, years, propensity_from=0, learner="parametric"),
        ]
        return [(e, n.propensity) for e, n in did_on_changes(changes, t, x, settings, rule)]

    expected = _on(1, monkeypatch, one_after_the_other)
    for found in (_on(1, monkeypatch, in_one_stream), _on(3, monkeypatch, in_one_stream)):
        for (effect, ps), (reference, reference_ps) in zip(found, expected, strict=True):
            assert np.array_equal(ps, reference_ps)
            assert (effect.estimate, effect.standard_error, effect.log_ratio, effect.log_ratio_se) == (
                reference.estimate, reference.standard_error, reference.log_ratio, reference.log_ratio_se,
            )  # fmt: skip
            assert np.array_equal(effect.weights, reference.weights)
