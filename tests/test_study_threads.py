"""The studies' arithmetic runs on one BLAS/OpenMP thread, and the limit is lifted afterwards."""

from threadpoolctl import threadpool_info, threadpool_limits

from pipelines.impact.threads import single_threaded


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


def test_openmp_reaches_scikit_learn_runtime() -> None:
    with threadpool_limits(limits=2), single_threaded(), single_threaded(openmp=True):
        assert _threads("openmp") == {1}
        assert _threads("blas") == {1}
