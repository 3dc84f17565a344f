"""tf.experiments: consent-aware experiments with deterministic assignment and DP results."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from tactful.errors import ValidationError
from tactful.experiments import (
    Assignment,
    Change,
    Experiment,
    ExperimentResults,
    Variant,
)
from tactful.parts.base import Part
from tactful.recommend import HybridRecommender
from tactful.store import Connection, SubjectRef, check_user_id

VariantsSpec = Mapping[str, float] | Sequence[Variant | Mapping[str, Any] | str]


def _variants(spec: VariantsSpec) -> list[Variant | Mapping[str, Any]]:
    if isinstance(spec, Mapping):
        return [{"name": name, "weight": weight} for name, weight in spec.items()]
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise ValidationError(
            "variants must be a list of variants ({'name': ..., 'weight': ..., 'blend': {...}}) "
            "or a mapping of name to weight"
        )
    return [{"name": v} if isinstance(v, str) else v for v in spec]


def _invalid(exc: pydantic.ValidationError) -> ValidationError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "experiment"
    return ValidationError(f"invalid experiment ({where}): {first['msg']}")


class ExperimentsAPI(Part):
    """tf.experiments: declare experiments, assign users, record metrics, release results."""

    def declare(
        self,
        experiment_id: str,
        *,
        variants: VariantsSpec,
        purpose: str,
        metrics: Sequence[str],
        control: str | None = None,
        description: str = "",
    ) -> Experiment:
        """Declare an experiment; audit-logged. A declaration never changes afterwards.

        `variants`: {"control": 1, "treatment": 1} or a list of {"name", "weight", "blend"}
        (blend: recommender weights the variant uses in `tf.recommend(..., experiment=ID)`).
        `purpose`: the declared purpose it serves (e.g. "improve.models"); only users whose
        consent covers it are enrolled. `metrics`: event kinds that count as a conversion.
        `control` defaults to the first variant. Results are charged to the privacy budget of
        dataset `experiment.<id>` (grant it with `tf.aggregates.grant`).
        """
        if isinstance(metrics, str):
            raise ValidationError("metrics must be a list of event kinds, e.g. ['click']")
        try:
            exp = Experiment.model_validate(
                {
                    "id": experiment_id,
                    "purpose": purpose,
                    "variants": _variants(variants),
                    "metrics": tuple(metrics),
                    "control": control or "",
                    "description": description,
                }
            )
        except pydantic.ValidationError as exc:
            raise _invalid(exc) from None
        unknown = {n for v in exp.variants for n in v.blend if n not in self._recommenders()}
        if unknown:
            raise ValidationError(
                f"unknown recommender(s) {sorted(unknown)} in a variant's blend "
                f"(known: {sorted(self._recommenders())})"
            )
        with self._store.begin() as conn:
            return self._tf._experiments.declare(conn, exp)

    def get(self, experiment_id: str) -> Experiment:
        """A declared experiment (ValidationError if unknown)."""
        with self._store.read() as conn:
            return self._tf._experiments.get(conn, experiment_id)

    def list(self) -> list[Experiment]:
        """Every declared experiment, by id."""
        with self._store.read() as conn:
            return self._tf._experiments.definitions.all(conn)

    def stop(self, experiment_id: str) -> Experiment:
        """Stop an experiment: everyone gets the control from now on; audit-logged."""
        with self._store.begin() as conn:
            return self._tf._experiments.stop(conn, experiment_id)

    def assign(self, experiment_id: str, user: str, *, expose: bool = True) -> Assignment:
        """The variant a user gets, recording their exposure (unless `expose=False`).

        Users not enrolled (consent does not cover the purpose, restricted, objected,
        unknown, or the experiment is stopped) get the control, with `enrolled=False`, and
        nothing is recorded about them.
        """
        check_user_id(user)
        with self._store.begin() as conn:
            exp = self._tf._experiments.get(conn, experiment_id)
            subject = self._store.subjects.find(conn, user)
            return self._tf._experiments.assign(conn, subject, exp, expose=expose)

    def convert(self, experiment_id: str, user: str, kind: str) -> bool:
        """Count a metric event (one of the experiment's `metrics`) of an exposed user.

        Returns False, recording nothing, when the user is not enrolled or was never exposed.
        """
        check_user_id(user)
        with self._store.begin() as conn:
            exp = self._tf._experiments.get(conn, experiment_id)
            subject = self._store.subjects.find(conn, user)
            return self._tf._experiments.convert(conn, subject, exp, kind)

    def results(self, experiment_id: str, *, epsilon: float) -> ExperimentResults:
        """Release the per-variant results with differential privacy (spends `epsilon`).

        Exposed and converted users per variant with 95% intervals, conversion rates and each
        variant's difference to the control with its interval. Charged to dataset
        `experiment.<id>`: BudgetExhausted (nothing spent) if too little is left.
        """
        return self._tf._experiments.results(experiment_id, epsilon)

    def last_results(self, experiment_id: str) -> ExperimentResults | None:
        """The latest release of the experiment's results (no new spending), or None."""
        with self._store.read() as conn:
            exp = self._tf._experiments.get(conn, experiment_id)
            return self._tf._experiments.last_results(conn, exp)

    # -- used by Tactful.recommend ------------------------------------------------------------

    def _arm(
        self, conn: Connection, subject: SubjectRef | None, experiment_id: str
    ) -> tuple[Assignment, Variant, Change]:
        """The call's assignment and variant, read in the call's snapshot (nothing written),
        and what recording it would change (`Experiments.assignment`; `_settle` writes it)."""
        exp = self._tf._experiments.get(conn, experiment_id)
        assignment, change = self._tf._experiments.assignment(conn, subject, exp)
        return assignment, exp.variant(assignment.variant), change

    def _settle(self, conn: Connection, subject: SubjectRef, a: Assignment, change: Change) -> None:
        """In the call's write transaction: forget the stored exposure of a subject no longer
        covered, or record the first exposure of a personalized answer if the subject is
        still enrolled now (consent may have been withdrawn since the snapshot)."""
        experiments = self._tf._experiments
        if change == "forget":
            experiments.exposures.forget(conn, subject, a.experiment)
        elif change == "expose":
            exp = experiments.get(conn, a.experiment)
            if experiments.enrolled(conn, subject, exp):
                experiments.exposures.expose(conn, subject, a.experiment, a.variant)

    def _recommenders(self) -> set[str]:
        return {c.name for c in self._tf._models.hybrid.components}


def shaped(hybrid: HybridRecommender, variant: Variant) -> HybridRecommender:
    """The hybrid with the variant's blend weights over the app's (shares fitted components)."""
    if not variant.blend:
        return hybrid
    out = copy.copy(hybrid)
    out.weights = {**hybrid.weights, **variant.blend}
    return out
