"""tf.experiments on SQLite and PostgreSQL: consent-gated enrolment, stable assignment,
encrypted exposures, DP results charged to the experiment's budget, traced decisions, erasure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tactful import BudgetExhausted, Tactful, ValidationError
from tactful.experiments import Assigner
from tests.conftest import POLICIES, seed_small, sqlite_store, write_lock_held

PURPOSE = "improve.models"


def declare(tf: Tactful, exp_id: str = "home", **kw: object) -> None:
    args: dict[str, object] = {
        "variants": {"control": 1, "treatment": 1},
        "purpose": PURPOSE,
        "metrics": ["click"],
    }
    args.update(kw)
    tf.experiments.declare(exp_id, **args)  # type: ignore[arg-type]


def enrol(tf: Tactful, users: list[str]) -> None:
    for u in users:
        tf.consent.grant(u, [PURPOSE])


def blend_for(tf: Tactful, users: list[str]) -> None:
    """The small store, trained, these users enrolled, and experiment "blend" declared."""
    seed_small(tf)
    tf.train()
    enrol(tf, users)
    declare(tf, "blend")


def counted(tf: Tactful, exp_id: str) -> dict[str, list[int]]:
    """The exact (not released) per-variant [exposed, converted] a release would count."""
    with tf._store.begin() as conn:
        exp = tf._experiments.get(conn, exp_id)
        out = {v.name: [0, 0] for v in exp.variants}
        for variant, metrics in tf._experiments.exposures.outcomes(
            conn, exp.id, tf._experiments.covered(conn, exp)
        ):
            out[variant][0] += 1
            out[variant][1] += int(any(metrics.get(k, 0) for k in exp.metrics))
    return out


def exposure_rows(tf: Tactful) -> list[tuple[str, int, bytes]]:
    from sqlalchemy import select

    from tactful.store.tables import ExperimentExposure, table_of

    t = table_of(ExperimentExposure)
    with tf._store.begin() as conn:
        rows = conn.execute(select(t.c.experiment_id, t.c.subject_id, t.c.ciphertext)).all()
    return [(r[0], r[1], bytes(r[2])) for r in rows]


# -- assignment ----------------------------------------------------------------------------


def test_assignment_is_the_same_in_another_instance_and_another_process(
    tf: Tactful, db_url: str, tmp_path: Path
) -> None:
    users = [f"user-{i}" for i in range(40)]
    enrol(tf, users)
    declare(tf)
    here = {u: tf.experiments.assign("home", u, expose=False).variant for u in users}
    assert set(here.values()) == {"control", "treatment"}
    with Tactful.open(db_url=db_url, key_file=tmp_path / "master.key", policies=POLICIES) as tf2:
        assert {u: tf2.experiments.assign("home", u, expose=False).variant for u in users} == here
    script = (
        "import json, sys\n"
        "from tactful import Tactful\n"
        "tf = Tactful.open(db_url=sys.argv[1], key_file=sys.argv[2], policies=sys.argv[3])\n"
        "users = json.loads(sys.argv[4])\n"
        "print(json.dumps({u: tf.experiments.assign('home', u, expose=False).variant "
        "for u in users}))\n"
        "tf.close()\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            db_url,
            str(tmp_path / "master.key"),
            str(POLICIES),
            json.dumps(users),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == here


def test_assignment_hashes_the_pseudonym_under_the_experiments_key_never_the_user_id(
    tf: Tactful,
) -> None:
    users = [f"user-{i}" for i in range(30)]
    enrol(tf, users)
    declare(tf)
    key = tf._store.subjects.keys.derived_key("experiments")
    by_ref = Assigner(key, "home", ["control", "treatment"], [1, 1])
    by_id = Assigner(key, "home", ["control", "treatment"], [1, 1])
    got = [tf.experiments.assign("home", u, expose=False).variant for u in users]
    assert got == [by_ref.variant(tf._store.subjects.pseudonym(u)) for u in users]
    assert got != [by_id.variant(u) for u in users], "the raw user id is not the hash input"


def test_weights_are_respected_chi_square() -> None:
    rng = np.random.default_rng(7)
    assigner = Assigner(rng.bytes(32), "w", ["a", "b", "c"], [1, 2, 7])
    counts = np.zeros(3)
    for _ in range(30_000):
        counts[assigner.index(rng.bytes(32).hex())] += 1
    expected = 30_000 * np.array([0.1, 0.2, 0.7])
    assert stats.chisquare(counts, expected).pvalue > 1e-4


def test_different_experiments_assign_independently() -> None:
    rng = np.random.default_rng(8)
    key = rng.bytes(32)
    a = Assigner(key, "one", ["x", "y"], [1, 1])
    b = Assigner(key, "two", ["x", "y"], [1, 1])
    refs = [rng.bytes(32).hex() for _ in range(20_000)]
    table = np.zeros((2, 2))
    for r in refs:
        table[a.index(r), b.index(r)] += 1
    assert stats.chi2_contingency(table).pvalue > 1e-4


# -- consent gates enrolment ---------------------------------------------------------------


def test_users_without_consent_get_control_and_are_never_recorded_or_counted(
    tf: Tactful,
) -> None:
    enrol(tf, [f"in-{i}" for i in range(10)])
    tf.consent.grant("outsider", ["personalization"])  # consent, but not to improve.models
    declare(tf, variants={"control": 1, "treatment": 1000})
    for u in [f"in-{i}" for i in range(10)]:
        tf.experiments.assign("home", u)
        tf.experiments.convert("home", u, "click")
    outsider = tf.experiments.assign("home", "outsider")
    assert (outsider.variant, outsider.enrolled) == ("control", False)
    assert tf.experiments.convert("home", "outsider", "click") is False
    stranger = tf.experiments.assign("home", "never-seen")
    assert (stranger.variant, stranger.enrolled) == ("control", False)
    assert len(exposure_rows(tf)) == 10
    assert sum(n for n, _ in counted(tf, "home").values()) == 10


def test_withdrawal_removes_the_user_from_results_and_future_assignment(tf: Tactful) -> None:
    users = [f"u{i}" for i in range(6)]
    enrol(tf, users)
    declare(tf)
    for u in users:
        tf.experiments.assign("home", u)
        tf.experiments.convert("home", u, "click")
    before = counted(tf, "home")
    leaving = tf.experiments.assign("home", "u0", expose=False).variant
    tf.consent.withdraw("u0", PURPOSE)
    after = counted(tf, "home")
    assert after[leaving] == [before[leaving][0] - 1, before[leaving][1] - 1]
    again = tf.experiments.assign("home", "u0")
    assert again.enrolled is False and again.variant == "control"
    assert len(exposure_rows(tf)) == 5, "the withdrawn user's exposure row is deleted"


def test_restricted_or_objecting_users_are_not_enrolled(tf: Tactful) -> None:
    enrol(tf, ["r", "o"])
    declare(tf)
    tf.rights.restrict("r")
    tf.rights.object("o", PURPOSE)
    assert not tf.experiments.assign("home", "r").enrolled
    assert not tf.experiments.assign("home", "o").enrolled
    assert exposure_rows(tf) == []


def test_stopped_experiment_enrols_nobody_new(tf: Tactful) -> None:
    enrol(tf, ["a", "b"])
    declare(tf)
    assert tf.experiments.assign("home", "a").enrolled
    assert tf.experiments.stop("home").status == "stopped"
    assert not tf.experiments.assign("home", "b").enrolled
    assert not tf.experiments.assign("home", "a").enrolled
    assert tf.experiments.convert("home", "a", "click") is False
    assert sum(n for n, _ in counted(tf, "home").values()) == 1, "a is still counted, b never"


def test_conversions_count_only_after_an_exposure(tf: Tactful) -> None:
    enrol(tf, ["a"])
    declare(tf)
    assert tf.experiments.convert("home", "a", "click") is False
    variant = tf.experiments.assign("home", "a").variant
    assert tf.experiments.convert("home", "a", "click") is True
    assert counted(tf, "home")[variant] == [1, 1]


def test_exposures_hold_no_plaintext_variant_or_metric(tf: Tactful) -> None:
    enrol(tf, ["a", "b", "c"])
    declare(tf, variants={"zz-control-zz": 1, "zz-treat-zz": 1}, metrics=["zz-click-zz"])
    for u in ["a", "b", "c"]:
        tf.experiments.assign("home", u)
        tf.experiments.convert("home", u, "zz-click-zz")
    for _, _, blob in exposure_rows(tf):
        assert b"zz-" not in blob


# -- declarations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"purpose": "nope"}, "not declared in the policy pack"),
        ({"variants": {"only": 1}}, "2-16 variants"),
        ({"variants": {"a": 1, "b": -1}}, "weight must be a finite number > 0"),
        ({"metrics": []}, "metrics must name"),
        ({"variants": {"a": 1, "b": 1}, "control": "c"}, "control 'c' is not one"),
        (
            {"variants": [{"name": "a"}, {"name": "b", "blend": {"nope": 1}}]},
            "unknown recommender",
        ),
    ],
)
def test_bad_declarations_are_refused_and_store_nothing(
    tf: Tactful, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        declare(tf, **kw)
    assert tf.experiments.list() == []


def test_a_declaration_never_changes(tf: Tactful) -> None:
    declare(tf)
    with pytest.raises(ValidationError, match="already declared"):
        declare(tf, variants={"control": 1, "treatment": 9})
    assert [v.weight for v in tf.experiments.get("home").variants] == [1, 1]
    with pytest.raises(ValidationError, match="not a metric"):
        tf.experiments.convert("home", "x", "purchase")
    with pytest.raises(ValidationError, match="not declared"):
        tf.experiments.assign("other", "x")


# -- DP results ----------------------------------------------------------------------------


def test_results_charge_the_experiment_budget_and_refuse_when_exhausted(tf: Tactful) -> None:
    users = [f"u{i}" for i in range(20)]
    enrol(tf, users)
    declare(tf)
    for i, u in enumerate(users):
        tf.experiments.assign("home", u)
        if i % 2:
            tf.experiments.convert("home", u, "click")
    with pytest.raises(BudgetExhausted, match=r"experiment\.home"):
        tf.experiments.results("home", epsilon=0.5)
    tf.aggregates.grant("experiment.home", 1.0, operator="test")
    first = tf.experiments.results("home", epsilon=0.6)
    assert tf.aggregates.budget("experiment.home").spent == pytest.approx(0.6)
    with pytest.raises(BudgetExhausted) as exc:
        tf.experiments.results("home", epsilon=0.6)
    assert exc.value.remaining == pytest.approx(0.4)
    assert tf.aggregates.budget("experiment.home").spent == pytest.approx(0.6)
    assert tf.experiments.last_results("home") == first
    truth = counted(tf, "home")
    assert [v.variant for v in first.variants] == ["control", "treatment"]
    for v in first.variants:
        assert 0.0 <= v.rate.low <= v.rate.value <= v.rate.high <= 1.0
        assert v.exposed.low <= v.exposed.value <= v.exposed.high
    (diff,) = first.differences
    assert (diff.variant, diff.versus) == ("treatment", "control")
    assert diff.low <= diff.value <= diff.high
    assert sum(n for n, _ in truth.values()) == 20
    with tf._store.begin() as conn:
        kinds = [r.payload.get("query") for r in tf._audit.records(conn, kind="dp.release")]
    assert kinds == ["experiment_results"]


def test_results_track_the_true_counts_within_their_intervals(tf: Tactful) -> None:
    # 95% intervals: over 12 releases each of 4 counts, far fewer than half may miss.
    users = [f"u{i}" for i in range(30)]
    enrol(tf, users)
    declare(tf)
    for i, u in enumerate(users):
        tf.experiments.assign("home", u)
        if i % 3 == 0:
            tf.experiments.convert("home", u, "click")
    tf.aggregates.grant("experiment.home", 12.0, operator="test")
    truth = counted(tf, "home")
    misses = 0
    for _ in range(12):
        r = tf.experiments.results("home", epsilon=1.0)
        for v in r.variants:
            n, c = truth[v.variant]
            misses += not (v.exposed.low <= n <= v.exposed.high)
            misses += not (v.converted.low <= c <= v.converted.high)
    assert misses <= 10


def test_results_epsilon_is_validated_before_anything_is_spent(tf: Tactful) -> None:
    declare(tf)
    tf.aggregates.grant("experiment.home", 1.0, operator="test")
    for bad in (0, -1, 2.0, float("nan")):
        with pytest.raises(ValidationError, match="epsilon"):
            tf.experiments.results("home", epsilon=bad)
    assert tf.aggregates.budget("experiment.home").spent == 0


# -- the gate and recommendations ----------------------------------------------------------


def test_decision_record_carries_the_variant_and_the_variant_shapes_the_blend(
    tf: Tactful,
) -> None:
    seed_small(tf)
    tf.train()
    enrol(tf, ["u1", "u2", "u4"])
    # Every enrolled user lands in "pop" (weight), whose blend is popularity only.
    tf.experiments.declare(
        "blend",
        variants=[
            {"name": "control", "weight": 1e-9},
            {"name": "pop", "weight": 1, "blend": {"item_item": 0, "content": 0, "popularity": 1}},
        ],
        purpose=PURPOSE,
        metrics=["click"],
    )
    plain = tf.recommend("u1", k=3)
    shaped = tf.recommend("u1", k=3, experiment="blend")
    assert shaped.mode == "personalized"
    assert {i.signal for i in shaped.items} == {"popularity"}
    assert {i.signal for i in plain.items} != {"popularity"}
    tf.recommend("u3", k=3, experiment="blend")  # no consent at all: control, not enrolled
    with tf._store.begin() as conn:
        records = list(tf._audit.records(conn, kind="decision"))
    by_id = {r.payload["decision_id"]: r.payload for r in records}
    assert "experiment" not in by_id[plain.decision_id]
    assert by_id[shaped.decision_id]["experiment"] == {
        "experiment": "blend",
        "variant": "pop",
        "enrolled": True,
    }
    last = records[-1].payload["experiment"]
    assert last == {"experiment": "blend", "variant": "control", "enrolled": False}
    assert counted(tf, "blend") == {"control": [0, 0], "pop": [1, 0]}


# -- rights --------------------------------------------------------------------------------


def test_a_gated_call_forgets_the_exposure_of_a_user_no_longer_covered(tf: Tactful) -> None:
    # The call reads the assignment in its read-only snapshot and writes what changed (the
    # exposure recorded, or forgotten) in its own transaction: on PostgreSQL the snapshot
    # refuses writes, so a write made there fails the call.
    blend_for(tf, ["u1", "u2"])
    tf.recommend("u1", k=3, experiment="blend")
    tf.recommend("u2", k=3, experiment="blend")
    assert len(exposure_rows(tf)) == 2, "personalized answers are exposures"
    tf.rights.restrict("u2")  # no longer covered by the purpose; its exposure is still held
    assert len(exposure_rows(tf)) == 2
    again = tf.recommend("u2", k=3, experiment="blend")
    assert again.mode != "personalized"
    with tf._store.read() as conn:
        kept = tf._store.subjects.get(conn, "u1").id
    assert [row[1] for row in exposure_rows(tf)] == [kept]


def _records_of(tf: Tactful, decision_ids: list[str]) -> list[dict[str, object]]:
    with tf._store.begin() as conn:
        by_id = {
            r.payload["decision_id"]: r.payload for r in tf._audit.records(conn, kind="decision")
        }
    return [by_id[d] for d in decision_ids]


def test_a_repeated_experiment_call_reads_nothing_until_an_experiment_or_the_user_changes(
    tf: Tactful, other: Tactful, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's assignment is kept with the gate's cached state: a repeated call opens no
    # snapshot. A stop of the experiment or a withdrawal in another instance (another
    # process, as far as caches go) is seen at the next call all the same.
    blend_for(tf, ["u1"])
    first = tf.recommend("u1", k=3, experiment="blend")
    snapshots: list[int] = []
    real = tf._store.read

    def counted() -> object:
        snapshots.append(1)
        return real()

    monkeypatch.setattr(tf._store, "read", counted)
    again = [tf.recommend("u1", k=3, experiment="blend") for _ in range(3)]
    assert snapshots == [], "a repeated call read nothing"
    assert len(exposure_rows(tf)) == 1
    other.experiments.stop("blend")
    stopped = tf.recommend("u1", k=3, experiment="blend")
    assert snapshots, "the stop was seen"
    other.consent.withdraw("u1", PURPOSE)
    withdrawn = tf.recommend("u1", k=3, experiment="blend")
    records = _records_of(
        tf, [first.decision_id, again[-1].decision_id, stopped.decision_id, withdrawn.decision_id]
    )
    enrolled = [r["experiment"]["enrolled"] for r in records]  # type: ignore[index]
    assert enrolled == [True, True, False, False]


def test_a_kept_assignment_follows_an_objection_in_another_process(
    tf: Tactful, other: Tactful
) -> None:
    blend_for(tf, ["u1"])
    tf.recommend("u1", k=3, experiment="blend")
    tf.recommend("u1", k=3, experiment="blend")  # kept
    assert len(exposure_rows(tf)) == 1
    other.rights.object("u1", PURPOSE)  # not covered any more; the exposure is still stored
    assert len(exposure_rows(tf)) == 1
    answer = tf.recommend("u1", k=3, experiment="blend")
    assert _records_of(tf, [answer.decision_id])[0]["experiment"]["enrolled"] is False  # type: ignore[index]
    assert exposure_rows(tf) == [], "the call forgot the exposure"


def test_an_exposure_is_not_recorded_for_a_consent_withdrawn_during_the_call(
    tf: Tactful, other: Tactful, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The call reads the assignment in its snapshot; if the user withdraws (another process)
    # before the call writes, its write transaction sees it and records no exposure.
    blend_for(tf, ["u1"])
    arm = tf.experiments._arm

    def withdrawn_meanwhile(*args: object) -> object:
        found = arm(*args)  # type: ignore[arg-type]
        other.consent.withdraw("u1", PURPOSE)
        return found

    monkeypatch.setattr(tf.experiments, "_arm", withdrawn_meanwhile)
    answer = tf.recommend("u1", k=3, experiment="blend")
    assert answer.mode == "personalized"  # decided on the snapshot, before the withdrawal
    assert exposure_rows(tf) == []


def test_a_gated_call_that_changes_nothing_does_not_wait_for_a_writer_on_sqlite(
    tmp_path: Path,
) -> None:
    # An experiment's call that changes nothing writes nothing: with another connection
    # holding SQLite's write lock it answers at once. That is a user not enrolled with no
    # exposure to forget (the call used to forget it in any case), and an enrolled user
    # already exposed (the call used to open a write transaction to find that out).
    with sqlite_store(tmp_path) as (tf, db):
        seed_small(tf)
        enrol(tf, ["u2"])
        declare(tf, "blend")
        tf.recommend("u1", k=3)  # the user's state in the gate's cache
        tf.recommend("u2", k=3, experiment="blend")  # u2's first exposure
        tf.audit.flush()
        assert len(exposure_rows(tf)) == 1
        with write_lock_held(db):
            answer = tf.recommend("u1", k=3, experiment="blend")  # u1 did not enrol
            assert answer.mode == "personalized"
            again = tf.recommend("u2", k=3, experiment="blend")
            assert again.mode == "personalized"
        assert len(exposure_rows(tf)) == 1


def test_erasure_removes_exposures_and_export_lists_them(tf: Tactful) -> None:
    enrol(tf, ["a", "b"])
    declare(tf)
    declare(tf, "second")
    for exp in ("home", "second"):
        tf.experiments.assign(exp, "a")
        tf.experiments.assign(exp, "b")
    tf.experiments.convert("home", "a", "click")
    exported = tf.rights.export("a")["inferred"]["experiments"]
    assert [(e["experiment"], e["metric_events"]) for e in exported] == [
        ("home", {"click": 1}),
        ("second", {}),
    ]
    assert exported[0]["variant"] == tf.experiments.assign("home", "a", expose=False).variant
    receipt = tf.rights.erase("a")
    assert receipt.experiment_exposures == 2
    assert len(exposure_rows(tf)) == 2
    assert sum(n for n, _ in counted(tf, "home").values()) == 1


def test_recommend_with_an_undeclared_experiment_is_refused_and_records_nothing(
    tf: Tactful,
) -> None:
    seed_small(tf)
    with tf._store.begin() as conn:
        before = len(list(tf._audit.records(conn)))
    for bad in ("nope", ""):
        with pytest.raises(ValidationError, match="not declared"):
            tf.recommend("u1", experiment=bad)
    with tf._store.begin() as conn:
        assert len(list(tf._audit.records(conn))) == before


def test_a_released_count_below_zero_is_shown_as_zero_inside_its_interval() -> None:
    """Discrete Laplace noise can push a small count below 0; what users read never is."""
    from tactful.dp import Estimate
    from tactful.experiments.stats import count

    shown = count(Estimate(value=-4.0, scale=2.0, low=-10.4, high=6.4))
    assert (shown.low, shown.value, shown.high) == (0.0, 0.0, 6.4)
    kept = count(Estimate(value=3.0, scale=2.0, low=-3.4, high=9.4))
    assert (kept.low, kept.value, kept.high) == (0.0, 3.0, 9.4)
