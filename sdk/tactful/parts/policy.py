"""tf.policy: the policy pack in force, explanations of decisions, atomic reload."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tactful.errors import PolicyError
from tactful.parts.base import Part
from tactful.policy import CompiledPolicy, load_pack
from tactful.policy.info import DecisionExplained, PolicySummary
from tactful.policy.pack import PolicyPack
from tactful.policy.testing import run_tests

# Files whose content other parts read once at open (consent ledger, stored fields, age rules,
# signals, the gate's compiled segments): a reload may not change them, a reopen must.
FIXED_FILES = (
    "purposes.yaml",
    "fields.yaml",
    "age_of_consent.yaml",
    "signals.yaml",
    "segments.yaml",
)


class PolicyAPI(Part):
    """tf.policy: which pack is in force, why a user gets the decision they get, reload."""

    @property
    def current(self) -> PolicySummary:
        """The pack in force: name, version, content hash, purposes, rules."""
        return PolicySummary.of(self._tf._gate.policy.pack)

    def explain(
        self,
        user: str,
        purpose: str = "personalization",
        context: Mapping[str, str] | None = None,
    ) -> DecisionExplained:
        """The decision `tf.recommend(user, purpose, context=...)` would get now, and why.

        Reads the user's state like the gate (a user unknown to the store is "unknown") and
        records nothing: no recommendation is made. ValidationError for an undeclared purpose.
        """
        gate = self._tf._gate
        policy = gate.policy
        with self._store.read() as conn:
            subject = self._store.subjects.find(conn, user)
            decision, _ = gate.decide(conn, subject, purpose, context)
        return DecisionExplained.of(decision, policy)

    def reload(
        self, directory: str | Path | None = None, *, run_pack_tests: bool = True
    ) -> PolicySummary:
        """Load, validate and compile a pack, then swap it in at once (this process only).

        `directory` defaults to the directory of the pack in force. The new rules apply to
        every later decision; a decision already under way finishes under the old ones. If
        anything is wrong — a file that does not validate (PolicyError names file, line and
        key), a failing case in the pack's tests/ (with `run_pack_tests`), or a change to a
        file that needs a reopen (purposes, fields, age table, signals, segments; or pack.yaml's
        controller, fallback or epsilon cap) — PolicyError says why and the old policy stays
        in force. A successful reload is recorded in the audit log (versions and hashes).
        """
        tf = self._tf
        old = tf._gate.policy.pack
        root = Path(directory) if directory is not None else old.directory
        keep = f"policy {old.meta.version} ({old.content_hash[:12]}) stays in force"
        try:
            pack = load_pack(root)
            _same_fixed_parts(old, pack)
            compiled = CompiledPolicy(pack)
            if run_pack_tests:
                report = run_tests(compiled)
                if report.failed:
                    first = next(r for r in report.results if not r.passed)
                    raise PolicyError(
                        f"{report.failed} of {len(report.results)} policy tests fail, first "
                        f"{first.file}: {first.name!r}: {first.failures[0]}"
                    )
        except PolicyError as exc:
            raise PolicyError(f"policy reload refused: {exc}; {keep}") from None
        with self._store.begin() as conn:
            tf._audit.append(
                conn,
                "policy.reloaded",
                {
                    "from_version": old.meta.version,
                    "from_hash": old.content_hash,
                    "to_version": pack.meta.version,
                    "to_hash": pack.content_hash,
                },
            )
            tf._gate.policy = compiled  # one reference swap: the switch is atomic
            tf.pack = pack
        return PolicySummary.of(pack)


def _same_fixed_parts(old: PolicyPack, new: PolicyPack) -> None:
    for name in FIXED_FILES:
        if old.files.get(name) != new.files.get(name):
            raise PolicyError(
                f"{new.directory / name} differs from the pack in force; changes to "
                f"{', '.join(FIXED_FILES)} need the store reopened (Tactful.open)"
            )
    a, b = old.meta, new.meta
    if (a.controller, a.non_personalized_fallback, a.max_epsilon_per_release) != (
        b.controller,
        b.non_personalized_fallback,
        b.max_epsilon_per_release,
    ):
        raise PolicyError(
            f"{new.directory / 'pack.yaml'}: controller, non_personalized_fallback and "
            "max_epsilon_per_release are read at open; changing them needs the store reopened"
        )
