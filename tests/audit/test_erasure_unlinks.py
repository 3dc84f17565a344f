"""After erasure the audit entries of a user link to nobody, and the chain still verifies.

Entries name a subject only by its random alias. Erasure clears the subject's pseudonym
(the keyed hash of the app's user id) and shreds its data key, so nothing in the store maps
the alias back to a person; the entries themselves are untouched, so the hash chain and the
signed checkpoints over them still verify.
"""

from __future__ import annotations

import json

from sqlalchemy import text

from tactful import Tactful
from tests.audit import damage
from tests.conftest import seed_small


def _subjects(tf: Tactful) -> dict[str, tuple[str | None, str]]:
    with tf._store.engine.connect() as conn:
        rows = conn.execute(text("SELECT alias, ref, status FROM subject")).all()
    return {r.alias: (r.ref, r.status) for r in rows}


def _audit_dump(tf: Tactful) -> list[tuple[str, str | None, str]]:
    tf.audit.flush()  # the table is read directly: queued decision records first
    with tf._store.engine.connect() as conn:
        return [
            (r.kind, r.alias, r.payload)
            for r in conn.execute(text("SELECT kind, alias, payload FROM audit_log ORDER BY seq"))
        ]


def test_erased_users_entries_link_to_nobody_and_the_signed_chain_verifies(
    tf: Tactful,
) -> None:
    seed_small(tf)
    tf.profiles.put("u1", {"country": "DE"})
    before = _subjects(tf)
    tf.recommend("u1")
    tf.recommend("u1", purpose="personalization")
    damage.grow(tf, 150 - tf.audit.verify().entries)  # a checkpoint at 100 before erasure
    tf.rights.erase("u1")
    damage.grow(tf, 60)  # and one at 200 after it
    tf.audit.checkpoint()

    after = _subjects(tf)
    [erased] = [a for a, (ref, status) in after.items() if status == "erased"]
    pseudonym = before[erased][0]
    assert pseudonym, "the subject had a pseudonym before erasure"
    assert after[erased] == (None, "erased"), "nothing maps the alias back to a user any more"

    logged = _audit_dump(tf)
    theirs = [kind for kind, alias, _ in logged if alias == erased]
    assert {"decision", "consent.given", "subject.erased"} <= set(theirs), theirs
    everything = json.dumps(logged)
    assert '"u1"' not in everything and "u1" not in {alias for _, alias, _ in logged}
    assert pseudonym not in everything, "the pseudonym never enters the audit log"
    for _, _, payload in logged:
        assert not {"user_id", "subject_id", "ref"} & set(json.loads(payload))

    verdict = tf.audit.verify()
    assert verdict.ok and verdict.checkpoints == 3
    assert verdict.checkpoint is not None and verdict.checkpoint.seq == verdict.entries


def test_a_returning_user_gets_a_new_alias_unlinked_from_the_old_entries(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1")
    tf.rights.erase("u1")
    known = set(_subjects(tf))
    tf.events.record("u1", "a")
    tf.recommend("u1")
    [fresh] = set(_subjects(tf)) - known
    last_decision = [alias for kind, alias, _ in _audit_dump(tf) if kind == "decision"][-1]
    assert last_decision == fresh, "the returning user's entries use the new alias only"
    assert tf.audit.verify().ok
