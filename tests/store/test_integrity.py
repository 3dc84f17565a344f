"""Integrity at the store: a ciphertext copied anywhere else by SQL fails with IntegrityError."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tactful import IntegrityError, Tactful

counter = itertools.count()
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60)
FIELDS = ["country", "display_name", "email", "age_range"]
SLOW = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _sql(tf: Tactful, statement: str, **params: object) -> None:
    with tf._store.begin() as conn:
        conn.execute(text(statement), params)


def _id(tf: Tactful, user: str) -> int:
    with tf._store.begin() as conn:
        return tf._store.subjects.get(conn, user).id


def _fresh(tf: Tactful, **values: object) -> str:
    user = f"user-{next(counter)}"
    if values:
        tf.profiles.put(user, values)
    tf.events.record_many(user, [("i1", "view", None), ("i2", "like", None)])
    tf.settings.update(user, excluded_topics=["x"])
    return user


def _read_all(tf: Tactful, user: str) -> Callable[[], object]:
    def read() -> object:
        tf._store.subjects.clear_cache()
        store = tf._store
        with store.begin() as conn:
            subject = store.subjects.get(conn, user)
            found = (store.profiles.get(conn, subject), store.events.read(conn, subject))
        return (*found, tf.settings.get(user))

    return read


@SLOW
@given(
    values=st.fixed_dictionaries({f: texts for f in FIELDS}),
    events=st.lists(st.tuples(texts, st.sampled_from(["view", "like", "buy"])), max_size=5),
)
def test_profiles_and_events_round_trip(
    tf: Tactful, values: dict[str, str], events: list[tuple[str, str]]
) -> None:
    user = f"rt-{next(counter)}"
    tf.profiles.put(user, values)
    tf.events.record_many(user, [(i[:128], k, None) for i, k in events])
    tf._store.subjects.clear_cache()
    assert tf.profiles.get(user) == values
    with tf._store.begin() as conn:
        stored = tf._store.events.read(conn, tf._store.subjects.get(conn, user))
    got = [(e.item, e.kind) for e in stored]
    assert sorted(got) == sorted((i[:128], k) for i, k in events)


@SLOW
@given(field=st.sampled_from(FIELDS), value=texts)
def test_profile_field_copied_to_another_user_fails(tf: Tactful, field: str, value: str) -> None:
    victim, source = _fresh(tf, **{field: "mine"}), _fresh(tf, **{field: value})
    _sql(
        tf,
        "UPDATE profile_field SET ciphertext = (SELECT ciphertext FROM profile_field "
        "WHERE subject_id = :src AND name = :f) WHERE subject_id = :dst AND name = :f",
        src=_id(tf, source),
        dst=_id(tf, victim),
        f=field,
    )
    with pytest.raises(IntegrityError):
        tf.profiles.get(victim, fields=[field])
    assert tf.profiles.get(source, fields=[field]) == {field: value}


@SLOW
@given(fields=st.permutations(FIELDS), value=texts)
def test_profile_field_copied_to_another_field_fails(
    tf: Tactful, fields: list[str], value: str
) -> None:
    src_field, dst_field = fields[0], fields[1]
    user = _fresh(tf, **{src_field: value, dst_field: "other"})
    _sql(
        tf,
        "UPDATE profile_field SET ciphertext = (SELECT ciphertext FROM profile_field "
        "WHERE subject_id = :s AND name = :a) WHERE subject_id = :s AND name = :b",
        s=_id(tf, user),
        a=src_field,
        b=dst_field,
    )
    with pytest.raises(IntegrityError):
        tf.profiles.get(user, fields=[dst_field])
    assert tf.profiles.get(user, fields=[src_field]) == {src_field: value}


@SLOW
@given(other_user=st.booleans())
def test_event_copied_to_another_row_or_user_fails(tf: Tactful, other_user: bool) -> None:
    victim = _fresh(tf)
    source = _fresh(tf) if other_user else victim
    source_id, victim_id = _id(tf, source), _id(tf, victim)
    with tf._store.begin() as conn:
        src = conn.execute(
            text("SELECT id FROM event WHERE subject_id = :s ORDER BY id LIMIT 1"),
            {"s": source_id},
        ).scalar_one()
        dst = conn.execute(
            text("SELECT id FROM event WHERE subject_id = :s AND id <> :e ORDER BY id LIMIT 1"),
            {"s": victim_id, "e": src},
        ).scalar_one()
    _sql(
        tf,
        "UPDATE event SET ciphertext = (SELECT ciphertext FROM event WHERE id = :src) "
        "WHERE id = :dst",
        src=src,
        dst=dst,
    )
    with pytest.raises(IntegrityError):
        _read_all(tf, victim)()
    with tf._store.begin() as conn, pytest.raises(IntegrityError):  # the bulk training read
        list(tf._store.events.bundles(conn, [victim_id]))


@SLOW
@given(target=st.sampled_from(["settings", "event", "profile"]))
def test_ciphertext_moved_to_another_table_fails(tf: Tactful, target: str) -> None:
    user = _fresh(tf, country="DE")
    sid = _id(tf, user)
    source = {
        "settings": "SELECT ciphertext FROM profile_field WHERE subject_id = :s",
        "event": "SELECT ciphertext FROM user_settings WHERE subject_id = :s",
        "profile": "SELECT ciphertext FROM event WHERE subject_id = :s ORDER BY id LIMIT 1",
    }[target]
    table = {"settings": "user_settings", "event": "event", "profile": "profile_field"}[target]
    _sql(tf, f"UPDATE {table} SET ciphertext = ({source}) WHERE subject_id = :s", s=sid)
    with pytest.raises(IntegrityError):
        _read_all(tf, user)()


def test_swapped_wrapped_keys_in_the_keystore_fail(tf: Tactful) -> None:
    a, b = _fresh(tf, country="DE"), _fresh(tf, country="FR")
    with tf._store.begin() as conn:
        alias_a = tf._store.subjects.get(conn, a).alias
        alias_b = tf._store.subjects.get(conn, b).alias
    with tf._store.keystore.begin() as conn:
        conn.execute(
            text(
                "UPDATE tactful_data_key SET wrapped = (SELECT wrapped FROM tactful_data_key "
                "WHERE key_id = :b) WHERE key_id = :a"
            ),
            {"a": alias_a, "b": alias_b},
        )
    tf._store.subjects.clear_cache()
    with pytest.raises(IntegrityError):
        tf.profiles.get(a)
    assert tf.profiles.get(b) == {"country": "FR"}


def test_integrity_error_names_no_value_and_says_what_to_do(tf: Tactful) -> None:
    a, b = _fresh(tf, email="secret@example.org"), _fresh(tf, email="other@example.org")
    _sql(
        tf,
        "UPDATE profile_field SET ciphertext = (SELECT ciphertext FROM profile_field "
        "WHERE subject_id = :src AND name = 'email') WHERE subject_id = :dst AND name = 'email'",
        src=_id(tf, a),
        dst=_id(tf, b),
    )
    with pytest.raises(IntegrityError) as info:
        tf.profiles.get(b)
    assert "restore" in str(info.value)
    assert "example.org" not in str(info.value) and b not in str(info.value)
