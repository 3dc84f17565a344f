"""Erasure: hooks after commit, a receipt of what went, bulk and dry runs, nothing left."""

from __future__ import annotations

import pytest
from sqlalchemy import text

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


def test_erasing_a_user_the_models_never_learned_keeps_recommendations(tf: Tactful) -> None:
    seed_small(tf)
    before = tf.recommend("u1", k=6)
    receipt = tf.rights.erase("u3")  # u3 never consented: the models never saw them
    assert receipt.events == 2
    assert tf.recommend("u1", k=6).items == before.items
