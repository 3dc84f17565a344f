"""Each kind of damage done to a real audit log (SQLite and PostgreSQL) and the verdict it gets.

The chain has 250 entries: real ones (consent, decisions) and padding, with the signed
checkpoints tactful writes at entries 100 and 200.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tactful import IntegrityError, Tactful
from tests.audit import damage
from tests.conftest import seed_small

HEAD = 250


@pytest.fixture
def chain(tf: Tactful) -> Tactful:
    seed_small(tf)
    tf.recommend("u1")
    tf.recommend("u3")
    assert damage.grow(tf, HEAD - tf.audit.verify().entries) == HEAD
    return tf


def test_an_intact_chain_verifies_to_its_last_checkpoint(chain: Tactful) -> None:
    verdict = chain.audit.verify()
    assert verdict.ok and verdict.entries == HEAD and verdict.damage is None
    assert verdict.checkpoints == 2
    assert verdict.checkpoint is not None and verdict.checkpoint.seq == 200
    assert verdict.unsigned_tail == 50
    assert "verified to signed checkpoint 200" in verdict.summary()


def test_a_chain_without_any_checkpoint_verifies(tf: Tactful) -> None:
    seed_small(tf)
    tf.recommend("u1")
    verdict = tf.audit.verify()
    assert verdict.ok and verdict.checkpoints == 0 and verdict.checkpoint is None
    assert verdict.unsigned_tail == verdict.entries
    assert "no signed checkpoint" in verdict.summary()


def test_an_on_demand_checkpoint_covers_the_head(chain: Tactful) -> None:
    assert chain.audit.checkpoint() == HEAD
    assert chain.audit.checkpoint() == HEAD, "signing the same head twice is a no-op"
    verdict = chain.audit.verify()
    assert verdict.ok and verdict.checkpoints == 3 and verdict.unsigned_tail == 0


def test_modified_payload_names_the_entry(chain: Tactful) -> None:
    damage.modify_payload(chain, 150)
    verdict = chain.audit.verify()
    assert (verdict.ok, verdict.damage, verdict.first_bad_seq) == (False, "modified", 150)
    assert verdict.entries == 149
    assert verdict.checkpoint is not None and verdict.checkpoint.seq == 100


def test_modified_first_entry_is_named(chain: Tactful) -> None:
    damage.modify_payload(chain, 1)
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq, verdict.entries) == ("modified", 1, 0)


def test_deleted_middle_entry_is_named(chain: Tactful) -> None:
    damage.delete_entry(chain, 150)
    verdict = chain.audit.verify()
    assert (verdict.ok, verdict.damage, verdict.first_bad_seq) == (False, "deleted", 150)
    assert "150..150 are missing" in (verdict.problem or "")


def test_deleted_entry_with_the_rest_renumbered_is_named(chain: Tactful) -> None:
    damage.delete_and_renumber(chain, 150)
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("deleted", 150)
    assert "renumbered" in (verdict.problem or "")


@pytest.mark.parametrize(("a", "b"), [(120, 180), (150, 151), (5, 240)])
def test_swapped_entries_are_named_reordered(chain: Tactful, a: int, b: int) -> None:
    damage.swap(chain, a, b)
    verdict = chain.audit.verify()
    assert (verdict.ok, verdict.damage, verdict.first_bad_seq) == (False, "reordered", a)
    assert f"sits at position {b}" in (verdict.problem or "")


def test_tail_cut_past_a_signed_checkpoint_is_truncated(chain: Tactful) -> None:
    chain.audit.checkpoint()  # e.g. taken before a backup
    damage.cut_tail(chain, 230)
    verdict = chain.audit.verify()
    assert (verdict.ok, verdict.damage, verdict.first_bad_seq) == (False, "truncated", 231)
    assert verdict.entries == 230 and "covers 250 entries but only 230 remain" in (
        verdict.problem or ""
    )


def test_tail_cut_with_its_checkpoints_below_a_periodic_one_is_caught(chain: Tactful) -> None:
    # Cut to 230 and delete checkpoint 200 along with the tail's: 200 was expected.
    chain.audit.checkpoint()
    damage.cut_tail(chain, 230, with_checkpoints=True)
    damage.delete_checkpoint(chain, 200)
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("deleted", 101)
    assert "checkpoint expected at entry 200" in (verdict.problem or "")


def test_tail_cut_after_the_last_checkpoint_cannot_be_seen(chain: Tactful) -> None:
    """The documented limit: past the last checkpoint only the hash chain stands, and a
    shorter chain is still a valid chain. verify says how far the signature reaches."""
    damage.cut_tail(chain, 220)
    verdict = chain.audit.verify()
    assert verdict.ok and verdict.entries == 220
    assert verdict.checkpoint is not None and verdict.checkpoint.seq == 200
    assert "last 20 entries are covered by the hash chain only" in verdict.summary()


def test_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoint(chain: Tactful) -> None:
    damage.forge_from(chain, 150)
    verdict = chain.audit.verify()
    assert (verdict.ok, verdict.damage, verdict.first_bad_seq) == (False, "forged", 101)
    assert "entries 101..200 were rewritten" in (verdict.problem or "")
    assert verdict.checkpoint is not None and verdict.checkpoint.seq == 100


def test_rewrite_that_deletes_the_covering_checkpoint_is_caught(chain: Tactful) -> None:
    damage.forge_from(chain, 150)
    damage.delete_checkpoint(chain, 200)
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("deleted", 101)
    assert "expected at entry 200" in (verdict.problem or "")


def test_rewrite_after_the_last_checkpoint_cannot_be_seen(chain: Tactful) -> None:
    damage.forge_from(chain, 210)
    verdict = chain.audit.verify()
    assert verdict.ok and verdict.unsigned_tail == 50


def test_rewrite_not_carried_to_the_next_entry_is_forged_at_the_rewritten_one(
    chain: Tactful,
) -> None:
    damage.forge_from(chain, 150, stop_after=150)
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("forged", 150)


def test_checkpoint_altered_without_the_key_is_forged(chain: Tactful) -> None:
    damage.alter_checkpoint(chain, 200)
    verdict = chain.audit.verify()
    assert (verdict.ok, verdict.damage, verdict.first_bad_seq) == (False, "forged", 200)
    assert "does not verify under the audit key" in (verdict.problem or "")


def test_made_up_checkpoint_is_forged(chain: Tactful) -> None:
    damage.fake_checkpoint(chain, 240)
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("forged", 240)


def test_deleting_every_checkpoint_leaves_a_chain_with_none(chain: Tactful) -> None:
    """Also a documented limit: with no checkpoint row left nothing is expected, so the
    verdict is ok but says no checkpoint vouches for the chain (compare with the last
    `tactful audit checkpoint` output kept elsewhere)."""
    damage.delete_all_checkpoints(chain)
    verdict = chain.audit.verify()
    assert verdict.ok and verdict.checkpoint is None and verdict.checkpoints == 0


def test_appends_after_damage_do_not_hide_it(chain: Tactful) -> None:
    damage.modify_payload(chain, 42)
    damage.grow(chain, 60)  # crosses entry 300: a new checkpoint over the damaged chain
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("modified", 42)


def test_a_periodic_checkpoint_is_withheld_over_a_broken_stretch(chain: Tactful) -> None:
    damage.modify_payload(chain, 210)
    damage.grow(chain, 60)  # entry 300 is due a checkpoint; it must not bless the damage
    with chain._store.begin() as conn:
        signed = conn.execute(text("SELECT seq FROM audit_checkpoint ORDER BY seq")).scalars()
        assert list(signed) == [100, 200]
    verdict = chain.audit.verify()
    assert (verdict.damage, verdict.first_bad_seq) == ("modified", 210)


def test_an_on_demand_checkpoint_refuses_to_sign_a_broken_stretch(chain: Tactful) -> None:
    damage.modify_payload(chain, 210)
    with pytest.raises(IntegrityError, match="nothing was signed"):
        chain.audit.checkpoint()
    assert chain.audit.verify().checkpoints == 2


def test_a_store_without_checkpoints_gets_its_first_at_the_next_hundred(chain: Tactful) -> None:
    """Like a store older than checkpoints: the first periodic one checks only the last 100
    entries (it runs inside an append), and from it on checkpoints are expected."""
    damage.delete_all_checkpoints(chain)
    damage.grow(chain, 60)
    verdict = chain.audit.verify()
    assert verdict.ok and verdict.checkpoints == 1
    assert verdict.checkpoint is not None and verdict.checkpoint.seq == 300
