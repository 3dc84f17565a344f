"""tf.aggregates on both databases: consent-aware input, bounds, bad queries, audit, popularity."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tactful import BudgetExhausted, ConsentRequired, Tactful, ValidationError
from tactful.store.tables import DPRelease
from tests.conftest import POLICIES, seed_small

AGG = "analytics.aggregate"


def _seed(tf: Tactful) -> None:
    seed_small(tf)
    for user in ("u1", "u2", "u4"):
        tf.consent.grant(user, [AGG])
    tf.aggregates.grant("default", 5.0, operator="ops")


def _spent(tf: Tactful, dataset: str = "default") -> float:
    return tf.aggregates.budget(dataset).spent


def test_count_covers_only_users_consenting_to_the_purpose(tf: Tactful) -> None:
    _seed(tf)
    # u1, u2, u4 have 3 events each; u3 (2 events) never consented to analytics.
    rel = tf.aggregates.count("events", epsilon=1.0, max_contributions=5)
    assert rel.kind == "count" and rel.epsilon == 1.0 and rel.dataset == "default"
    est = rel.value
    assert est is not None and est.scale == pytest.approx(5.0)
    assert est.low is not None and est.high is not None
    assert est.low < est.value < est.high
    assert est.high - est.value == pytest.approx(est.value - est.low)
    assert _spent(tf) == pytest.approx(1.0)


def test_withdrawn_and_erased_users_are_never_included_again(tf: Tactful) -> None:
    _seed(tf)
    tf.aggregates.grant("default", 100.0, operator="ops")
    keys = ["a", "d"]  # a: u1, u2 and u4 viewed it; d: only u3, who is not covered

    # One row per user counts (the others are not keys), so the noise has scale 1 (standard
    # deviation about 1.36); the mean of 40 releases (sd about 0.21) is within 1.0 of the
    # truth, 4.6 standard deviations, except with probability below 1e-5.
    def averaged() -> dict[str, float]:
        runs = [
            tf.aggregates.histogram("events", "item", keys=keys, epsilon=1.0, max_contributions=1)
            for _ in range(40)
        ]
        return {k: sum(r.by_key[k].value for r in runs) / len(runs) for k in keys}

    before = averaged()
    assert before["a"] == pytest.approx(3, abs=1.0) and before["d"] == pytest.approx(0, abs=1.0)
    tf.rights.erase("u1")
    tf.consent.withdraw("u2", [AGG])
    after = averaged()
    assert after["a"] == pytest.approx(1, abs=1.0) and after["d"] == pytest.approx(0, abs=1.0)


def test_restricted_purpose_categories_are_refused(tf: Tactful) -> None:
    _seed(tf)
    tf.profiles.put("u1", {"birth_year": 1990})
    with pytest.raises(ConsentRequired, match="does not cover data category"):
        tf.aggregates.mean(
            "profiles", "birth_year", bounds=(1900, 2026), epsilon=0.5, max_contributions=1
        )
    assert _spent(tf) == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: a.count("events", epsilon=0.5), "unbounded contributions"),
        (lambda a: a.sum("events", "hour", epsilon=0.5, max_contributions=2), "unbounded values"),
        (lambda a: a.count("events", epsilon=0.0, max_contributions=2), "epsilon must be"),
        (lambda a: a.count("events", epsilon=-1, max_contributions=2), "epsilon must be"),
        (lambda a: a.count("events", epsilon=float("nan"), max_contributions=2), "epsilon must"),
        (lambda a: a.count("events", epsilon=1.5, max_contributions=2), "above the policy"),
        (lambda a: a.count("events", epsilon=0.5, max_contributions=0), "max_contributions"),
        (lambda a: a.count("logs", epsilon=0.5, max_contributions=2), "unknown source"),
        (
            lambda a: a.histogram("events", "price", keys=["x"], epsilon=0.5, max_contributions=2),
            "has no column 'price'",
        ),
        (
            lambda a: a.mean("events", "item", bounds=(0, 1), epsilon=0.5, max_contributions=2),
            "needs a number column",
        ),
        (
            lambda a: a.sum("events", "hour", bounds=(5, 1), epsilon=0.5, max_contributions=2),
            "lower < upper",
        ),
        (
            lambda a: a.count("events", epsilon=0.5, max_contributions=2, purpose="spying"),
            "not declared",
        ),
        (
            lambda a: a.count("events", epsilon=0.5, max_contributions=2, where={"colour": "x"}),
            "has no column 'colour'",
        ),
        (
            lambda a: a.top_k("events", "kind", k=3, epsilon=0.5, max_contributions=2),
            "candidate `keys`",
        ),
    ],
)
def test_bad_queries_are_rejected_and_spend_nothing(
    tf: Tactful, call: object, message: str
) -> None:
    _seed(tf)
    with pytest.raises(ValidationError, match=message):
        call(tf.aggregates)  # type: ignore[operator]
    assert _spent(tf) == 0
    assert tf.aggregates.releases() == []


def test_exhausted_budget_says_what_is_left_and_spends_nothing(tf: Tactful) -> None:
    _seed(tf)
    for _ in range(5):
        tf.aggregates.count("events", epsilon=0.9, max_contributions=3)
    with pytest.raises(BudgetExhausted) as info:
        tf.aggregates.count("events", epsilon=0.9, max_contributions=3)
    assert info.value.dataset == "default"
    assert info.value.remaining == pytest.approx(0.5)
    assert "0.5 of 5 is left" in str(info.value)
    assert _spent(tf) == pytest.approx(4.5)
    assert len(tf.aggregates.releases()) == 5
    tf.aggregates.count("events", epsilon=0.5, max_contributions=3)  # exactly what is left
    assert tf.aggregates.budget().remaining == pytest.approx(0.0, abs=1e-9)


def test_a_dataset_without_a_grant_has_no_budget(tf: Tactful) -> None:
    _seed(tf)
    with pytest.raises(BudgetExhausted, match="has no privacy budget yet") as info:
        tf.aggregates.count("events", epsilon=0.1, max_contributions=1, dataset="marketing")
    assert info.value.remaining == 0.0


def test_epsilons_add_up_exactly(tf: Tactful) -> None:
    seed_small(tf)
    tf.aggregates.grant("tenths", 0.3, operator="ops")
    for _ in range(3):  # 0.1 + 0.1 + 0.1 > 0.3 in floats; the budget counts micro-epsilons
        tf.aggregates.count("events", epsilon=0.1, max_contributions=1, dataset="tenths")
    with pytest.raises(BudgetExhausted):
        tf.aggregates.count("events", epsilon=0.1, max_contributions=1, dataset="tenths")


def test_releases_and_grants_are_audited_without_data(tf: Tactful) -> None:
    _seed(tf)
    tf.aggregates.histogram("events", "item", keys=["a", "b"], epsilon=0.5, max_contributions=2)
    with tf._store.begin() as conn:
        records = list(tf._audit.records(conn))
    grants = [r for r in records if r.kind == "dp.budget.granted"]
    releases = [r for r in records if r.kind == "dp.release"]
    assert grants[0].payload == {
        "dataset": "default",
        "epsilon": 5.0,
        "total": 5.0,
        "operator": "ops",
    }
    (entry,) = releases
    assert entry.payload["query"] == "histogram" and entry.payload["epsilon"] == 0.5
    assert entry.payload["dataset"] == "default" and entry.payload["purpose"] == AGG
    text = json.dumps(entry.payload)
    for secret in ("u1", "u2", "Alpha", '"a"'):
        assert secret not in text
    assert tf.audit.verify().ok


def test_every_query_kind_returns_estimates_with_intervals(tf: Tactful) -> None:
    _seed(tf)
    tf.aggregates.grant("default", 10.0, operator="ops")
    aggs = tf.aggregates
    common = {"epsilon": 1.0, "max_contributions": 3}
    total = aggs.sum("events", "hour", bounds=(0, 23), **common).value
    mean = aggs.mean("events", "hour", bounds=(0, 23), **common).value
    assert total is not None and mean is not None
    assert mean.low is not None and mean.high is not None and 0 <= mean.low <= mean.high <= 23
    q = aggs.quantiles("events", "hour", alphas=[0.25, 0.5], bounds=(0, 23), **common)
    assert set(q.by_key) == {"0.25", "0.5"}
    assert all(0 <= e.value <= 23 and e.low is None for e in q.by_key.values())
    top = aggs.top_k("events", "item", k=2, **common)
    assert len(top.by_key) == 2
    assert set(top.by_key) <= {"a", "b", "c", "d", "e", "f"}
    grouped = aggs.group_by(
        "events", "kind", keys=["view", "buy"], column="hour", bounds=(0, 23), **common
    )
    assert set(grouped.by_group) == {"view", "buy"}
    assert set(grouped.by_group["view"]) == {"count", "mean"}
    consents = aggs.histogram(
        "consents", "state", keys=["given", "withdrawn"], where={"purpose": AGG}, **common
    )
    assert set(consents.by_key) == {"given", "withdrawn"}
    assert len(aggs.releases()) == 6


@pytest.fixture
def profile_tf(db_url: str, tmp_path: Path) -> Iterator[Tactful]:
    """A store whose pack lets analytics.aggregate read demographics and preferences."""
    pack = tmp_path / "policies"
    shutil.copytree(POLICIES, pack)
    purposes = yaml.safe_load((pack / "purposes.yaml").read_text())
    purposes["purposes"][AGG]["data_categories"] += ["user.demographic", "user.preference"]
    (pack / "purposes.yaml").write_text(yaml.safe_dump(purposes))
    store = Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=pack)
    try:
        yield store
    finally:
        store.close()


def test_profile_aggregates_clamp_values_and_explode_lists(profile_tf: Tactful) -> None:
    tf = profile_tf
    for i in range(30):
        tf.profiles.put(f"p{i}", {"birth_year": 1990, "favorite_genres": ["scifi", "drama"]})
        tf.consent.grant(f"p{i}", [AGG])
    tf.profiles.put("p0", {"birth_year": 3000})  # clamped to the upper bound
    tf.aggregates.grant("default", 10.0, operator="ops")
    mean = tf.aggregates.mean(
        "profiles", "birth_year", bounds=(1900, 2000), epsilon=1.0, max_contributions=1
    ).value
    assert mean is not None and mean.low is not None and mean.high is not None
    assert mean.low <= 2000 and mean.high >= 1900
    genres = tf.aggregates.histogram(
        "profiles",
        "favorite_genres",
        keys=["scifi", "drama", "horror"],
        epsilon=1.0,
        max_contributions=2,
    ).by_key
    assert genres["scifi"].value > genres["horror"].value - 3 * genres["horror"].scale


def test_non_personalized_mode_serves_the_dp_popularity_list_once_released(tf: Tactful) -> None:
    _seed(tf)
    before = tf.recommend("u3", k=3)  # u3 did not consent to personalization
    assert before.mode == "non_personalized"
    assert {i.signal for i in before.items} == {"popularity"}
    tf.aggregates.grant("popularity", 2.0, operator="ops")
    rel = tf.aggregates.popularity.release(k=6, epsilon=1.0, max_contributions=3)
    assert rel.dataset == "popularity" and len(rel.by_key) == 6
    assert tf.aggregates.budget("popularity").spent == pytest.approx(1.0)
    assert _spent(tf) == 0  # its own budget
    after = tf.recommend("u3", k=3)
    assert after.mode == "non_personalized"
    assert [i.item for i in after.items] == list(rel.by_key)[:3]
    assert {i.signal for i in after.items} == {"dp_popularity"}
    # The schedule: a fresh list is not released again, so nothing more is spent.
    record = tf.aggregates.popularity.refresh(epsilon=1.0, max_contributions=3)
    assert record.id == rel.id
    assert tf.aggregates.budget("popularity").spent == pytest.approx(1.0)


def test_the_cached_popularity_list_is_shared_across_processes(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as first:
        _seed(first)
        first.aggregates.grant("popularity", 1.0, operator="ops")
        rel = first.aggregates.popularity.release(k=4, epsilon=1.0, max_contributions=3)
    with Tactful.open(db_url=db_url, key_file=key, policies=POLICIES) as second:
        recs = second.recommend("u3", k=4)
        assert [i.item for i in recs.items] == list(rel.by_key)
        with second._store.begin() as conn:
            stored = conn.execute(DPRelease.__table__.select()).all()  # type: ignore[attr-defined]
        assert [r.kind for r in stored] == ["top_k"]
