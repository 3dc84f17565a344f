"""The report's numbers against seeded truth, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tactful import BudgetExhausted, Tactful, ValidationError
from tactful.reports import Unavailable
from tactful.reports.model import Checkpoint, DPRelease
from tests.audit import damage
from tests.reports.conftest import DAY, Truth


def test_decisions_by_purpose_outcome_reasons_and_categories_match_the_calls(
    seeded: tuple[Tactful, Truth],
) -> None:
    tf, truth = seeded
    d = tf.report(since=truth.since, until=truth.until).report.decisions
    assert d.by_purpose == {p: dict(c) for p, c in truth.outcomes.items()}
    assert d.total == 9
    assert d.recommendations == 9 - sum(c["denied"] for c in truth.outcomes.values())
    for outcome in ("non_personalized", "denied"):
        got = {r.rule: r.decisions for r in d.top_reasons[outcome]}
        assert got == dict(truth.reasons.get(outcome, {}))
    assert truth.reasons["denied"], "the seed must include denied decisions"
    shares = {c.category: (c.decisions, c.share) for c in d.categories_used}
    assert shares == {
        cat: (n, round(n / d.recommendations, 6)) for cat, n in truth.categories.items()
    }
    assert sum(p.personalized + p.non_personalized + p.denied for p in d.trend) == 9


def test_consent_current_states_and_period_grants_withdrawals_expiries(
    seeded: tuple[Tactful, Truth],
) -> None:
    tf, truth = seeded
    consent = tf.report(since=truth.since, until=truth.until).report.consent
    by = {p.purpose: p for p in consent.purposes}
    pers = by["personalization"]
    assert pers.current == {"expired": 1, "given": 2, "refused": 1, "withdrawn": 1}
    # u2, u3 and u4's renewal; u2's withdrawal; u1's lapse (u4's first grant was renewed).
    assert (pers.granted, pers.withdrawn, pers.expired) == (3, 1, 1)
    assert by["analytics.aggregate"].current == {"given": 1}
    assert by["analytics.aggregate"].granted == 0  # granted before the period
    assert "service.delivery" not in by  # contract basis: no consent to count
    expiry_day = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    points = {p.bucket: p for p in pers.trend}
    assert points[expiry_day].expired == 1
    assert sum(p.granted for p in pers.trend) == 3
    assert len(pers.trend) in (31, 32)  # every day of the period, empty ones included


def test_requests_on_time_late_median_open_and_overdue(seeded: tuple[Tactful, Truth]) -> None:
    tf, truth = seeded
    req = tf.report(since=truth.since, until=truth.until).report.requests
    by = {t.type: t for t in req.by_type}
    access, erasure = by["access"], by["erasure"]
    assert (access.received, access.completed, access.on_time, access.late) == (3, 2, 1, 1)
    assert access.median_days_to_complete == pytest.approx(14.5, abs=0.01)
    assert access.open == 1
    assert (erasure.received, erasure.completed, erasure.on_time, erasure.late) == (1, 1, 1, 0)
    assert erasure.median_days_to_complete == pytest.approx(3, abs=0.01)
    assert erasure.open == 1
    ids = truth.request_ids
    assert [o.id for o in req.open] == [ids["r4"], ids["r5"]]
    assert [o.id for o in req.overdue] == [ids["r4"]]
    assert req.overdue[0].days_left == pytest.approx(-9, abs=0.01)
    assert req.open[1].days_left == pytest.approx(25, abs=0.01)


def test_period_excludes_decisions_and_events_outside_it(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    later = datetime.now(UTC) + timedelta(hours=1)
    r = tf.report(since=later, until=later + timedelta(days=1)).report
    assert r.decisions.total == 0 and r.decisions.by_purpose == {}
    assert all(p.granted == 0 and p.expired == 0 for p in r.consent.purposes)
    assert all(t.received == 0 and t.completed == 0 for t in r.requests.by_type)
    assert len(r.requests.open) == 2  # open requests are listed whatever the period


def test_report_is_itself_audited_and_the_chain_verifies(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    before = tf.audit.verify().entries
    first = tf.report().report
    assert first.integrity.audit_chain_ok and first.integrity.entries == before
    second = tf.report().report
    assert second.integrity.entries == before + 1  # the first report's own entry


def test_broken_chain_is_reported_with_the_first_bad_entry(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    with tf._store.begin() as conn:
        conn.execute(text("UPDATE audit_log SET kind = 'forged' WHERE seq = 4"))
    integ = tf.report().report.integrity
    assert not integ.audit_chain_ok and integ.first_bad_seq == 4 and integ.damage == "modified"
    assert "BROKEN (modified) at entry 4" in tf.report().to_markdown()


def test_integrity_names_the_checkpoint_the_chain_verified_to(
    seeded: tuple[Tactful, Truth],
) -> None:
    tf, _ = seeded
    unsigned = tf.report().report.integrity
    assert unsigned.audit_chain_ok and unsigned.checkpoint is None
    assert unsigned.entries < 100, "the seeded store is below the first periodic checkpoint"
    assert "none verified" in tf.report().to_markdown()

    damage.grow(tf, 100 - tf.audit.verify().entries)  # entry 100: a periodic checkpoint
    signed_at = tf.audit.checkpoint()
    assert signed_at == 100
    damage.grow(tf, 20)
    signed_on_demand = tf.audit.checkpoint()
    damage.grow(tf, 5)
    report = tf.report()
    integ = report.report.integrity
    cp = integ.checkpoint
    assert isinstance(cp, Checkpoint)
    assert (cp.seq, cp.checkpoints, cp.signature_ok) == (signed_on_demand, 2, True)
    assert cp.entries_after == 5 and integ.entries == signed_on_demand + 5
    with tf._store.engine.connect() as conn:
        head = conn.execute(
            text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": signed_on_demand}
        ).scalar_one()
    assert cp.hash == head
    as_json = json.loads(report.to_json())["integrity"]["checkpoint"]
    assert as_json["seq"] == signed_on_demand and as_json["checkpoints"] == 2
    md = report.to_markdown()
    assert f"Verified to signed checkpoint at entry {signed_on_demand} (2 signed" in md
    assert "The 5 entries after it are covered by the hash chain only." in md
    assert f"signed checkpoint at entry {signed_on_demand}" in report.to_html()


def test_integrity_reports_a_truncated_chain_and_its_last_good_checkpoint(
    seeded: tuple[Tactful, Truth],
) -> None:
    tf, _ = seeded
    damage.grow(tf, 130 - tf.audit.verify().entries)
    tf.audit.checkpoint()
    damage.cut_tail(tf, 120)
    integ = tf.report().report.integrity
    assert (integ.audit_chain_ok, integ.damage, integ.first_bad_seq) == (False, "truncated", 121)
    assert isinstance(integ.checkpoint, Checkpoint) and integ.checkpoint.seq == 100


def test_art30_records_come_from_the_policy_pack(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    rec = tf.report().report.records
    pack = tf.pack
    assert rec.controller.name == pack.meta.controller.name
    assert [a.purpose for a in rec.activities] == pack.purposes.ids()
    email = next(a for a in rec.activities if a.purpose == "marketing.email")
    assert email.recipients == ["e-mail delivery processor"] and email.retention_days == 730
    fields = {f for c in rec.data_categories for f in c.fields}
    assert fields == set(pack.schema.fields) | {"events"}
    assert rec.data_subjects.by_status == {"active": 6}
    assert rec.security.key_rotation_age_days is not None


def test_key_versions_and_retention_runs_are_reported(seeded: tuple[Tactful, Truth]) -> None:
    tf, _ = seeded
    integ = tf.report().report.integrity
    assert not isinstance(integ.keys, Unavailable)
    assert [(v.version, v.current, v.since) for v in integ.keys.versions] == [
        (1, True, "store_start")
    ]
    assert not isinstance(integ.retention, Unavailable) and integ.retention.last_run is None
    tf.keys.rotate()
    ran = tf.retention.run()
    integ = tf.report().report.integrity
    assert not isinstance(integ.keys, Unavailable) and integ.keys.rotations == 1
    current = next(v for v in integ.keys.versions if v.current)
    assert current.since == "rotation" and current.data_keys == 6
    assert current.age_days is not None and current.age_days < 0.01
    assert not isinstance(integ.retention, Unavailable)
    assert integ.retention.last_run is not None and integ.retention.runs_in_period == 1
    assert integ.retention.events == ran.events


def test_public_report_needs_a_budget_and_charges_nothing_without_one(
    seeded: tuple[Tactful, Truth],
) -> None:
    tf, _ = seeded
    before = tf.audit.verify().entries
    with pytest.raises(BudgetExhausted, match="'reports' has no privacy budget"):
        tf.report(public=True)
    assert tf.audit.verify().entries == before
    assert tf.aggregates.budget("reports").spent == 0


def test_public_report_releases_consent_with_dp_and_charges_the_budget(
    seeded: tuple[Tactful, Truth],
) -> None:
    tf, truth = seeded
    tf.aggregates.grant("reports", 2.0, operator="dpo")
    report = tf.report(since=truth.since, until=truth.until, public=True, epsilon=0.5)
    consent = report.report.consent
    assert consent.public and isinstance(consent.dp, DPRelease)
    assert consent.dp.epsilon_spent == 0.5 and consent.dp.dataset == "reports"
    for p in consent.purposes:
        assert (p.granted, p.withdrawn, p.expired, p.trend) == (None, None, None, [])
        assert all(isinstance(v, int) and v > 0 for v in p.current.values())
    assert tf.aggregates.budget("reports").spent == pytest.approx(0.5)
    assert [r.kind for r in tf.aggregates.releases("reports")] == ["report.consent"]
    budget = tf.report().report.privacy_budget
    assert not isinstance(budget, Unavailable)
    (row,) = [d for d in budget.datasets if d.dataset == "reports"]
    assert (row.granted, row.spent, row.releases_in_period) == (2.0, 0.5, 1)
    md = report.to_markdown()
    assert "released with differential privacy" in md and "granted in period" not in md


def test_public_release_is_close_to_the_truth_at_scale(tf: Tactful) -> None:
    # 400 users given: the noise (scale = purposes / epsilon) is small next to the count.
    t = datetime.now(UTC)
    for i in range(400):
        tf.consent.grant(f"user-{i}", "personalization", at=t - timedelta(days=1))
    tf.aggregates.grant("reports", 10.0, operator="dpo")
    released = tf.report(public=True, epsilon=1.0).report.consent.purposes
    given = next(p for p in released if p.purpose == "personalization").current["given"]
    assert abs(given - 400) < 80  # scale = 5 purposes / epsilon 1: P(|noise| >= 80) < 1e-6


def test_public_epsilon_above_the_packs_cap_is_refused(tf: Tactful) -> None:
    tf.aggregates.grant("reports", 10.0, operator="dpo")
    with pytest.raises(ValidationError, match="max_epsilon_per_release"):
        tf.report(public=True, epsilon=5.0)
    assert tf.aggregates.budget("reports").spent == 0


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (datetime(2026, 1, 1), None, "since must be timezone-aware"),
        (None, datetime(2026, 1, 1), "until must be timezone-aware"),
        (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "period is empty"),
    ],
)
def test_bad_period_is_refused_and_nothing_is_audited(
    tf: Tactful, since: datetime | None, until: datetime | None, message: str
) -> None:
    before = tf.audit.verify().entries
    with pytest.raises(ValidationError, match=message):
        tf.report(since=since, until=until)
    assert tf.audit.verify().entries == before


def test_extended_and_paused_requests_move_their_deadlines_in_the_report(tf: Tactful) -> None:
    t = datetime.now(UTC)
    tf.consent.grant("ann", "personalization")
    tf.consent.grant("bob", "personalization")
    extended = tf.rights.requests.open("access", "ann", received_at=t - timedelta(days=40))
    tf.rights.requests.extend(extended.id, "complex request", by=1)
    paused = tf.rights.requests.open(
        "erasure", "bob", profile="ccpa", identity_verified=False, received_at=t - 50 * DAY
    )
    req = tf.report().report.requests
    by_id = {o.id: o for o in req.open}
    # One calendar month + one month of extension from t-40d: about 21 days left, not overdue.
    assert by_id[extended.id].extended and 19 <= by_id[extended.id].days_left <= 22
    assert by_id[extended.id].profile == "gdpr"
    # Paused since it arrived: the 45 days have not started to run.
    assert by_id[paused.id].status == "paused" and by_id[paused.id].profile == "ccpa"
    assert by_id[paused.id].days_left == pytest.approx(45, abs=0.01)
    assert req.overdue == []
    assert {t.type: t.extended for t in req.by_type} == {"access": 1, "erasure": 0}
