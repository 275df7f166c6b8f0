"""The report tests' shared runs: trained once for the whole session (each takes a second)."""

from __future__ import annotations

import pytest

from tests.report.runs import Run, pbt_run


@pytest.fixture(scope="session")
def run() -> Run:
    return pbt_run()


@pytest.fixture(scope="session")
def failing_run() -> Run:
    # Member 1 starts at lr=0.3 and fails: it is replaced by copying a healthy member.
    return pbt_run(fail_above=0.2)
