"""The privacy budget across processes: concurrent reservations never overspend."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from tactful import BudgetExhausted, Tactful
from tests.conftest import POLICIES, seed_small

WORKERS = 4
ATTEMPTS = 6
COST = 0.3
TOTAL = 2.0  # room for 6 releases of 0.3; 24 are attempted


def _reserve_many(db_url: str, key_file: str, barrier: Any, results: Any) -> None:
    ok = refused = 0
    with Tactful.open(db_url=db_url, key_file=key_file, policies=POLICIES) as tf:
        barrier.wait(timeout=60)  # all processes start reserving at the same moment
        for _ in range(ATTEMPTS):
            try:
                tf.aggregates.count("events", epsilon=COST, max_contributions=1)
                ok += 1
            except BudgetExhausted:
                refused += 1
    results.put((ok, refused))


def test_concurrent_processes_never_overspend_the_budget(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as tf:
        seed_small(tf)
        tf.aggregates.grant("default", TOTAL, operator="ops")
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=_reserve_many, args=(db_url, str(key), barrier, queue))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    granted = sum(ok for ok, _ in results)
    assert granted == int(TOTAL // COST)  # exactly as many as fit, not one more
    assert sum(refused for _, refused in results) == WORKERS * ATTEMPTS - granted
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as tf:
        status = tf.aggregates.budget()
        assert status.spent == pytest.approx(granted * COST)
        assert status.spent <= status.total
        assert len(tf.aggregates.releases()) == granted
        assert tf.audit.verify().ok


def test_budget_survives_a_restart(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as tf:
        seed_small(tf)
        tf.aggregates.grant("default", 1.0, operator="ops")
        tf.aggregates.count("events", epsilon=0.8, max_contributions=1)
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as tf:
        assert tf.aggregates.budget().remaining == pytest.approx(0.2)
        with pytest.raises(BudgetExhausted):
            tf.aggregates.count("events", epsilon=0.3, max_contributions=1)
        assert [b.dataset for b in tf.aggregates.budgets()] == ["default"]
