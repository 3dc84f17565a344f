"""Several processes writing to the same users at once, on PostgreSQL: nothing is lost."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from tactful import Tactful
from tests.conftest import POLICIES

USERS = [f"shared-{i}" for i in range(4)]
FIELDS = ["country", "display_name", "email", "age_range"]
ROUNDS = 2
BATCH = 5


def _writer(
    worker: int, db_url: str, keystore_url: str, key_file: str, start: mp.synchronize.Event
) -> None:
    start.wait(30)
    with Tactful.open(
        db_url=db_url, key_file=key_file, keystore_url=keystore_url, policies=POLICIES
    ) as tf:
        for r in range(ROUNDS):
            for user in USERS:
                tf.events.record_many(
                    user, [(f"w{worker}-r{r}-{i}", "view", None) for i in range(BATCH)]
                )
                tf.profiles.put(user, {FIELDS[worker]: f"w{worker}"})


@pytest.mark.postgres
def test_concurrent_writer_processes_lose_nothing(
    pg_schema_url: str, pg_keystore_url: str, tmp_path: Path
) -> None:
    key_file = str(tmp_path / "master.key")
    # The key file exists before the race (each process would otherwise make its own).
    Tactful.open(
        db_url=f"sqlite:///{tmp_path / 'scratch.db'}", key_file=key_file, policies=POLICIES
    ).close()
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_writer, args=(w, pg_schema_url, pg_keystore_url, key_file, start))
        for w in range(len(FIELDS))
    ]
    for p in procs:
        p.start()
    start.set()  # all open the fresh store and write at the same moment
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)

    with Tactful.open(
        db_url=pg_schema_url, key_file=key_file, keystore_url=pg_keystore_url, policies=POLICIES
    ) as tf:
        for user in USERS:
            assert tf.profiles.get(user) == {f: f"w{w}" for w, f in enumerate(FIELDS)}
            items = sorted(e["item"] for e in tf.rights.export(user)["events"])
            expected = sorted(
                f"w{w}-r{r}-{i}"
                for w in range(len(FIELDS))
                for r in range(ROUNDS)
                for i in range(BATCH)
            )
            assert items == expected
        # One subject and one data key per user: racing creators left no duplicate behind.
        assert tf.keys.status().versions == {1: len(USERS)}
