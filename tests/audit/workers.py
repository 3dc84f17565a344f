"""Writers in processes of their own (spawned), started together at a barrier."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.synchronize import Barrier

Work = Callable[[str, str, int, Barrier], None]


def run_writers(work: Work, db_url: str, key_file: str, workers: int) -> None:
    """Run `work(db_url, key_file, worker, barrier)` in `workers` spawned processes; each must
    exit cleanly (a failing writer fails the test)."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(workers)
    procs = [ctx.Process(target=work, args=(db_url, key_file, w, start)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert [p.exitcode for p in procs] == [0] * workers
