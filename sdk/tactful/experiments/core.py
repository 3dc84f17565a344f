"""Experiments: declare, enrol by consent, assign by keyed hash, record, release results with DP.

A user is enrolled in an experiment only while they are active (not restricted or erased),
their consent covers the experiment's purpose (or the purpose rests on another lawful basis)
and they have not objected to it. Everyone else gets the control experience, is never
recorded, and is never counted; a user who withdraws loses their exposure row the next time
they are seen and drops out of every later release at once (a release counts only users
covered at release time).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from typing import Literal

import numpy as np
from sqlalchemy import Connection, select

from tactful.audit import AuditLog
from tactful.consent import ConsentLedger
from tactful.dp import engine
from tactful.dp.budget import BudgetLedger, to_micro
from tactful.dp.sources import covered_subjects
from tactful.errors import ValidationError
from tactful.experiments import stats
from tactful.experiments.assign import Assigner
from tactful.experiments.model import (
    Assignment,
    Difference,
    Experiment,
    ExperimentResults,
    RateEstimate,
    VariantResult,
)
from tactful.experiments.records import Definitions, Exposures
from tactful.store import Store, SubjectRef, now
from tactful.store.tables import DPRelease, Objection, table_of

KEY_LABEL = "experiments"
RELEASE_KIND = "experiment"
_release = table_of(DPRelease)
_objection = table_of(Objection)


# What recording an assignment changes (`Experiments.assignment`).
Change = Literal["expose", "forget"] | None


class Experiments:
    """The experiments of one store, inside the caller's transactions."""

    RELEASE_KIND = RELEASE_KIND

    def __init__(
        self, store: Store, ledger: ConsentLedger, audit: AuditLog, max_epsilon: float
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._audit = audit
        self._max_epsilon = max_epsilon
        self._budget = BudgetLedger()
        self.definitions = Definitions()
        self.exposures = Exposures(store.subjects)
        self._key: bytes | None = None
        # Definitions never change once declared, so an Assigner per id stays valid for good.
        self._assigners: dict[str, Assigner] = {}

    # -- declarations ------------------------------------------------------------------------

    def declare(self, conn: Connection, experiment: Experiment) -> Experiment:
        """Store a new experiment and audit it; its purpose must be declared in the pack."""
        purposes = self._ledger.purposes
        if experiment.purpose not in purposes.purposes:
            raise ValidationError(
                f"purpose {experiment.purpose!r} is not declared in the policy pack's "
                f"purposes.yaml (declared: {', '.join(purposes.ids())}); an experiment serves "
                "a declared purpose, e.g. 'improve.models'"
            )
        stored = self.definitions.insert(conn, experiment)
        self._audit.append(
            conn,
            "experiment.declared",
            {
                "experiment": stored.id,
                "purpose": stored.purpose,
                "variants": [{"name": v.name, "weight": v.weight} for v in stored.variants],
                "control": stored.control,
                "metrics": list(stored.metrics),
                "dataset": stored.dataset,
            },
        )
        return stored

    def get(self, conn: Connection, experiment_id: str) -> Experiment:
        """The declared experiment; ValidationError naming the declared ones if unknown."""
        found = (
            self.definitions.get(conn, experiment_id) if isinstance(experiment_id, str) else None
        )
        if found is None:
            known = [e.id for e in self.definitions.all(conn)]
            raise ValidationError(
                f"experiment {str(experiment_id)[:48]!r} is not declared (declared: "
                f"{', '.join(known) or 'none'}); declare it with tf.experiments.declare"
            )
        return found

    def stop(self, conn: Connection, experiment_id: str) -> Experiment:
        """Stop enrolling: from now on everyone gets the control; results stay releasable."""
        exp = self.get(conn, experiment_id)
        if self.definitions.stop(conn, exp.id):
            self._audit.append(conn, "experiment.stopped", {"experiment": exp.id})
        return self.get(conn, exp.id)

    # -- assignment --------------------------------------------------------------------------

    def assigner(self, experiment: Experiment) -> Assigner:
        """The (cached) keyed-hash assigner of an experiment."""
        found = self._assigners.get(experiment.id)
        if found is None:
            if self._key is None:
                self._key = self._store.subjects.keys.derived_key(KEY_LABEL)
            found = Assigner(
                self._key,
                experiment.id,
                [v.name for v in experiment.variants],
                [v.weight for v in experiment.variants],
            )
            self._assigners[experiment.id] = found
        return found

    def enrolled(
        self, conn: Connection, subject: SubjectRef | None, experiment: Experiment
    ) -> bool:
        """True if the subject may be counted in the experiment (consent, status, no objection)."""
        if subject is None or subject.status != "active":
            return False
        purpose = self._ledger.purposes.get(experiment.purpose)
        if purpose.needs_consent:
            state = self._ledger.status(conn, subject).get(experiment.purpose)
            if state is None or not state.given:
                return False
        objected = conn.execute(
            select(_objection.c.purpose).where(
                (_objection.c.subject_id == subject.id)
                & (_objection.c.purpose == experiment.purpose)
            )
        ).first()
        return objected is None

    def assign(
        self,
        conn: Connection,
        subject: SubjectRef | None,
        experiment: Experiment,
        *,
        expose: bool,
    ) -> Assignment:
        """The subject's variant (recording the exposure if `expose`), or the control.

        A subject no longer covered loses their stored exposure to this experiment. A stopped
        experiment enrols nobody (and keeps what it recorded, for its results).
        """
        found, change = self.assignment(conn, subject, experiment)
        if change == "forget" and subject is not None:
            self.exposures.forget(conn, subject, experiment.id)
        elif change == "expose" and expose and subject is not None:
            self.exposures.expose(conn, subject, experiment.id, found.variant)
        return found

    def assignment(
        self, conn: Connection, subject: SubjectRef | None, experiment: Experiment
    ) -> tuple[Assignment, Change]:
        """`assign` without writing (a read-only snapshot may be `conn`): the assignment, and
        what recording it would change: "expose" (enrolled, no exposure stored yet),
        "forget" (no longer covered, an exposure still stored) or None."""
        control = Assignment(experiment=experiment.id, variant=experiment.control, enrolled=False)
        if experiment.status != "running":
            return control, None
        held = subject is not None and self.exposures.held(conn, subject, experiment.id)
        if not self.enrolled(conn, subject, experiment):
            return control, "forget" if held else None
        assert subject is not None  # enrolled() is False for None
        variant = self.assigner(experiment).variant(subject.ref)
        enrolled = Assignment(experiment=experiment.id, variant=variant, enrolled=True)
        return enrolled, None if held else "expose"

    def convert(
        self, conn: Connection, subject: SubjectRef | None, experiment: Experiment, kind: str
    ) -> bool:
        """Count a metric event of an enrolled, exposed subject; False if it does not count."""
        if kind not in experiment.metrics:
            raise ValidationError(
                f"event kind {str(kind)[:32]!r} is not a metric of experiment "
                f"{experiment.id!r} (metrics: {', '.join(experiment.metrics)})"
            )
        if experiment.status != "running":
            return False
        if not self.enrolled(conn, subject, experiment):
            if subject is not None:
                self.exposures.forget(conn, subject, experiment.id)
            return False
        assert subject is not None
        return self.exposures.convert(conn, subject, experiment.id, kind)

    # -- results -----------------------------------------------------------------------------

    def covered(self, conn: Connection, experiment: Experiment) -> list[SubjectRef]:
        """Subjects who may be counted now: covered by the purpose and not objecting to it."""
        purpose = self._ledger.purposes.get(experiment.purpose)
        subjects = covered_subjects(conn, self._ledger, experiment.purpose, purpose)
        objecting = set(
            conn.execute(
                select(_objection.c.subject_id).where(_objection.c.purpose == experiment.purpose)
            ).scalars()
        )
        return [s for s in subjects if s.id not in objecting]

    def results(self, experiment_id: str, epsilon: float) -> ExperimentResults:
        """Release per-variant counts and rates with DP, charging `experiment.<id>`'s budget.

        Nothing is spent if anything fails (BudgetExhausted says what is left).
        """
        if not (
            isinstance(epsilon, int | float)
            and not isinstance(epsilon, bool)
            and math.isfinite(epsilon)
            and 0 < epsilon <= self._max_epsilon
        ):
            raise ValidationError(
                f"epsilon must be a number in (0, {self._max_epsilon:g}] (the policy pack's "
                "max_epsilon_per_release); smaller is more private and noisier"
            )
        store = self._store
        with store.begin() as conn:
            exp = self.get(conn, experiment_id)
            covered = self.covered(conn, exp)
            codes = codes_of(exp, self.exposures.outcomes(conn, exp.id, covered))
        release_id, stamp = uuid.uuid4().hex, now()
        with store.begin() as conn:
            self._budget.reserve(conn, exp.dataset, float(epsilon))
            # Rows of users who withdrew (or were restricted, or objected) since they were
            # exposed serve no purpose any more: they go with this release.
            self.exposures.prune(conn, exp.id, (s.id for s in covered))
            variants, diffs = estimate(exp, codes, float(epsilon))
            out = ExperimentResults(
                experiment=exp.id,
                release_id=release_id,
                released_at=stamp,
                epsilon=float(epsilon),
                dataset=exp.dataset,
                variants=variants,
                differences=diffs,
            )
            conn.execute(
                _release.insert().values(
                    id=release_id,
                    dataset=exp.dataset,
                    kind=RELEASE_KIND,
                    epsilon_micro=to_micro(float(epsilon)),
                    created_at=stamp,
                    result=out.model_dump_json(),
                )
            )
            self._audit.append(
                conn,
                "dp.release",
                {
                    "release": release_id,
                    "query": "experiment_results",
                    "experiment": exp.id,
                    "dataset": exp.dataset,
                    "epsilon": float(epsilon),
                    "purpose": exp.purpose,
                    "max_contributions": 2,
                },
            )
        return out

    def last_results(self, conn: Connection, experiment: Experiment) -> ExperimentResults | None:
        """The latest stored release of the experiment's results (already private), or None."""
        row = conn.execute(
            select(_release.c.result)
            .where((_release.c.dataset == experiment.dataset) & (_release.c.kind == RELEASE_KIND))
            .order_by(_release.c.created_at.desc(), _release.c.id)
            .limit(1)
        ).first()
        if row is None or row.result is None:
            return None
        return ExperimentResults.model_validate(json.loads(row.result))

    def releases(self, conn: Connection, experiment: Experiment) -> int:
        """How many results releases the experiment had."""
        return len(
            conn.execute(
                select(_release.c.id).where(
                    (_release.c.dataset == experiment.dataset) & (_release.c.kind == RELEASE_KIND)
                )
            ).all()
        )


def codes_of(
    experiment: Experiment, outcomes: Iterable[tuple[str, dict[str, int]]]
) -> engine.CodeArray:
    """Histogram codes: variant i exposed -> i, converted -> n + i (unknown ones dropped)."""
    index = {v.name: i for i, v in enumerate(experiment.variants)}
    n = len(index)
    out: list[int] = []
    for variant, metrics in outcomes:
        i = index.get(variant)
        if i is None:
            continue
        out.append(i)
        if any(metrics.get(k, 0) > 0 for k in experiment.metrics):
            out.append(n + i)
    return np.asarray(out, dtype=np.int32)


def estimate(
    experiment: Experiment, codes: engine.CodeArray, epsilon: float
) -> tuple[tuple[VariantResult, ...], tuple[Difference, ...]]:
    """The DP release of histogram codes (see `codes_of`): per-variant counts and rates, and
    each variant's difference to the control. Spends nothing itself: the caller reserves.

    Each user adds at most 2 to the vector (one exposure and at most one conversion, in
    their single variant): the L1 sensitivity handed to OpenDP's discrete Laplace.
    """
    n = len(experiment.variants)
    noisy = engine.dp_histogram(codes, 2 * n, 2, epsilon)
    variants: list[VariantResult] = []
    rates: list[tuple[RateEstimate, float]] = []
    for i, v in enumerate(experiment.variants):
        r, var = stats.rate(noisy[n + i], noisy[i])
        rates.append((r, var))
        variants.append(
            VariantResult(
                variant=v.name,
                exposed=stats.count(noisy[i]),
                converted=stats.count(noisy[n + i]),
                rate=r,
            )
        )
    c = [v.name for v in experiment.variants].index(experiment.control)
    diffs = tuple(
        stats.difference(v.name, experiment.control, *rates[i], *rates[c])
        for i, v in enumerate(experiment.variants)
        if i != c
    )
    return tuple(variants), diffs
