"""Erasure: hooks after commit, a receipt of what went, bulk and dry runs, nothing left."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tactful import ErasureNotice, SubjectNotFound, Tactful
from tests.conftest import seed_small


def test_the_hook_runs_after_commit_with_the_request_and_the_app_user_id(tf: Tactful) -> None:
    seed_small(tf)
    seen: list[tuple[ErasureNotice, bool]] = []

    @tf.rights.on_erasure
    def propagate(notice: ErasureNotice) -> None:
        try:
            tf.rights.export(notice.user_id)
            gone = False
        except SubjectNotFound:
            gone = True
        seen.append((notice, gone))

    request = tf.rights.requests.open("erasure", "u1")
    receipt = tf.rights.erase("u1", request_id=request.id)
    [(notice, gone)] = seen
    assert gone, "the hook sees the erasure already committed"
    assert notice.user_id == "u1" and notice.request_id == request.id
    assert notice.alias == request.alias
    assert receipt.hooks_called == 1 and receipt.hooks_failed == 0
    with tf._store.engine.connect() as conn:
        logged = conn.execute(text("SELECT payload FROM audit_log")).scalars().all()
    assert not any('"u1"' in p for p in logged), "the user id is never logged"


def test_a_failing_hook_is_reported_and_does_not_undo_the_erasure(tf: Tactful) -> None:
    seed_small(tf)

    def broken(notice: ErasureNotice) -> None:
        raise ConnectionError(f"processor down for {notice.user_id}")

    tf.rights.on_erasure(broken)
    receipt = tf.rights.erase("u2")
    assert receipt.hooks_failed == 1 and receipt.hook_errors == ("ConnectionError",)
    with pytest.raises(SubjectNotFound):
        tf.rights.export("u2")
    with tf._store.engine.connect() as conn:
        propagated = [r.payload for r in tf._audit.records(conn, kind="erasure.propagated")]
    assert propagated == [
        {"request_id": receipt.request_id, "hooks": 1, "failed": 1, "errors": ["ConnectionError"]}
    ]


def test_the_receipt_lists_what_was_erased_and_the_consents_withdrawn(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "DE"})
    tf.settings.update("u1", discovery=0.5)
    tf.consent.grant("u1", ["marketing.email"])
    tf.rights.object("u1", "analytics.aggregate")
    receipt = tf.rights.erase("u1")
    assert receipt.events == 3 and receipt.profile_fields == 1 and receipt.objections == 1
    assert receipt.consents_withdrawn == ("marketing.email", "personalization")
    assert receipt.consent_records == 2 and receipt.settings >= 1
    assert receipt.data_key_shredded and receipt.models_unlearned
    info = tf.rights.requests.show(receipt.request_id)
    assert info.kind == "erasure" and info.status == "completed"
    assert info.receipt is not None and info.receipt["events"] == 3
    with tf._store.engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM rights_objection")).scalar_one()
    assert left == 0


def test_bulk_erasure_counts_missing_users_and_a_dry_run_erases_nothing(tf: Tactful) -> None:
    seed_small(tf)
    ticks: list[int] = []
    dry = tf.rights.erase_many(["u1", "ghost", "u2"], dry_run=True, progress=ticks.append)
    assert (dry.erased, dry.not_found, dry.request_ids) == (2, 1, ())
    assert ticks == [1, 2, 3]
    assert tf.rights.export("u1")["events"], "a dry run erases nothing"
    done = tf.rights.erase_many(["u1", "ghost", "u2"])
    assert (done.erased, done.not_found, len(done.request_ids)) == (2, 1, 2)
    for user in ("u1", "u2"):
        with pytest.raises(SubjectNotFound):
            tf.rights.export(user)
    assert tf.rights.export("u3")["events"], "others are untouched"
    assert tf.rights.awaiting_purge() == 2
    purged = tf.rights.purge()
    assert purged.subjects == 2 and purged.rows == {"events": 6}
    assert len(tf.rights.export("u3")["events"]) == 2, "the purge leaves others' rows"


def test_erasing_a_user_the_models_never_learned_keeps_recommendations(tf: Tactful) -> None:
    seed_small(tf)
    before = tf.recommend("u1", k=6)
    receipt = tf.rights.erase("u3")  # u3 never consented: the models never saw them
    assert receipt.events == 2
    assert tf.recommend("u1", k=6).items == before.items


def _fail_on(tf: Tactful, name: str, table: str, when: str) -> None:
    """A real database failure: a trigger that aborts the matching UPDATE (a crash stand-in)."""
    with tf._store.engine.begin() as conn:
        if tf._store.dialect == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} WHEN {when} "
                    "BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'simulated crash'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW "
                    f"WHEN ({when}) EXECUTE FUNCTION {name}()"
                )
            )


def _repair(tf: Tactful, name: str, table: str) -> None:
    with tf._store.engine.begin() as conn:
        conn.execute(
            text(f"DROP TRIGGER {name}" + ("" if tf._store.dialect == "sqlite" else f" ON {table}"))
        )


def test_an_erasure_interrupted_after_the_key_shred_completes_when_run_again(tf: Tactful) -> None:
    seed_small(tf)
    tf.profiles.put("u4", {"email": "u4@example.org"})
    assert "f" in tf.recommend("u3", k=6).item_ids, "f is only viewed by u4, who consented"
    request = tf.rights.requests.open("erasure", "u4")
    _fail_on(tf, "fail_erase", "subject", "NEW.status = 'erased'")
    with pytest.raises(DBAPIError, match="simulated crash"):
        tf.rights.erase("u4", request_id=request.id)
    # Half done: the key was shredded (committed first), the data transaction rolled back.
    with pytest.raises(SubjectNotFound, match="data key is gone"):
        tf.profiles.get("u4")
    assert tf.rights.requests.show(request.id).status == "open"
    _repair(tf, "fail_erase", "subject")
    receipt = tf.rights.erase("u4", request_id=request.id)
    assert receipt.resumed and receipt.request_id == request.id
    assert (receipt.events, receipt.profile_fields) == (3, 1)
    assert receipt.consents_withdrawn == ("personalization",)
    assert tf.rights.requests.show(request.id).status == "completed"
    with pytest.raises(SubjectNotFound, match="never recorded, or erased"):
        tf.rights.export("u4")
    assert tf.profiles.find("email", "u4@example.org") == []
    # The events could not be read to unlearn them: the models refit without u4 instead.
    assert "f" not in tf.recommend("u3", k=6).item_ids
    tf.rights.purge()
    with tf._store.engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT count(*) FROM event e JOIN subject s ON s.id = e.subject_id "
                "WHERE s.status = 'erased'"
            )
        ).scalar_one()
    assert left == 0


def test_an_erasure_interrupted_during_its_hooks_finishes_them_when_run_again(
    tf: Tactful,
) -> None:
    seed_small(tf)
    calls: list[str] = []

    @tf.rights.on_erasure
    def propagate(notice: ErasureNotice) -> None:
        calls.append(notice.user_id)
        if len(calls) == 1:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or the process dying, mid-hook

    with pytest.raises(KeyboardInterrupt):
        tf.rights.erase("u1")
    with pytest.raises(SubjectNotFound):
        tf.rights.export("u1")  # the erasure itself is committed
    [first] = tf.rights.requests.list(kind="erasure")
    receipt = tf.rights.erase("u1")
    assert receipt.resumed and receipt.request_id == first.id
    assert receipt.hooks_called == 1 and receipt.hooks_failed == 0 and calls == ["u1", "u1"]
    assert receipt.events == 3 and receipt.data_key_shredded
    with tf._store.engine.connect() as conn:
        propagated = [r.payload for r in tf._audit.records(conn, kind="erasure.propagated")]
        kept = conn.execute(text("SELECT count(*) FROM rights_erasure WHERE ref IS NOT NULL"))
        assert kept.scalar_one() == 0, "the pseudonym is forgotten once the hooks finished"
    assert propagated == [{"request_id": first.id, "hooks": 1, "failed": 0, "errors": []}]
    with pytest.raises(SubjectNotFound):
        tf.rights.erase("u1")
    assert calls == ["u1", "u1"]


def test_an_interrupted_purge_goes_on_when_run_again(tf: Tactful) -> None:
    seed_small(tf)
    first = tf.rights.erase("u1")
    second = tf.rights.erase("u2")
    _fail_on(tf, "fail_purge", "rights_request", "NEW.receipt LIKE '%purged_at%'")
    with pytest.raises(DBAPIError, match="simulated crash"):
        tf.rights.purge(batch_size=2)  # the batches before the last one are committed
    assert tf.rights.awaiting_purge() == 2
    _repair(tf, "fail_purge", "rights_request")
    report = tf.rights.purge(batch_size=2)
    assert report.subjects == 2 and tf.rights.awaiting_purge() == 0
    for receipt in (first, second):
        stored = tf.rights.requests.show(receipt.request_id).receipt
        assert stored is not None and stored["purged_at"] and stored["events"] == 3
    with tf._store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM event")).scalar_one() == 5  # u3, u4


def test_a_long_history_is_counted_by_the_purge_not_by_the_request(tf: Tactful) -> None:
    tf.events.record_many("long", [(f"i{n % 50}", "view", None) for n in range(1203)])
    receipt = tf.rights.erase("long")
    assert receipt.events is None and receipt.purge_pending and receipt.profile_fields == 0
    with pytest.raises(SubjectNotFound):
        tf.rights.export("long")
    report = tf.rights.purge(batch_size=500)
    assert report.rows == {"events": 1203} and report.batches == 3  # 500, 500, 203
    stored = tf.rights.requests.show(receipt.request_id).receipt
    assert stored is not None and stored["events"] == 1203 and not stored["purge_pending"]
    with tf._store.engine.connect() as conn:
        [entry] = [r.payload for r in tf._audit.records(conn, kind="erasure.purged")]
    assert entry == {"subjects": 1, "rows": {"events": 1203}}
