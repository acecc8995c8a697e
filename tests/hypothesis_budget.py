"""How many examples a property test draws: the number written in the test under ``make test-thorough``
(``PARCOURS_HYPOTHESIS=thorough``), a third of it (at least 10) in ``make test``.

Every run of ``make test`` draws new examples (CI draws the same ones: ``tests/conftest.py``), so the
suite's exploration adds up over runs; the thorough run is the one to use after changing a reader, the
privacy guard or the disclosure rules. The explicit ``@example`` cases run in both."""

from __future__ import annotations

import os

THOROUGH = os.environ.get("PARCOURS_HYPOTHESIS", "") == "thorough"


def examples(written: int) -> int:
    return written if THOROUGH else max(10, written // 3)
