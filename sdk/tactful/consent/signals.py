"""Consent signals (Global Privacy Control, IAB TCF v2.2) and their precedence.

Which of our purposes a signal touches is declared in the policy pack's signals.yaml. The
precedence between signals and first-party choices (docs/consent.md) is one pure function,
`plan`, so it can be tested without a store:

1. A signal that would not change the state records nothing (it is repeated on every
   request; the ledger should not fill with copies): a grant when consent is in force, an
   opt-out when the latest record already refuses or withdraws. An opt-out is recorded even
   when the user was never asked (as "refused"), so that later signals cannot grant it.
2. A first-party choice (method ui, api or import) made after the last record of a signal
   wins over that signal: repeating the signal does not override it. This is how a user who
   sends GPC can still opt in for one site (CCPA regulations section 7025(c)(3)).
3. A signal never grants what the user refused or withdrew first-party, nor what a GPC
   opt-out covers: opt-outs beat opt-ins among signals.
4. Otherwise the signal is recorded (method "gpc" or "tcf") and is in force from the next call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from tactful.consent.age import describe
from tactful.consent.ledger import FIRST_PARTY
from tactful.consent.purposes import PurposeCatalog
from tactful.consent.tcf import TCString
from tactful.errors import PolicyError, ValidationError

SIGNALS_FILE = "signals.yaml"
GPC_HEADER = "sec-gpc"
MAX_HEADERS = 256
Action = Literal["recorded", "unchanged", "overridden"]


class GpcMap(BaseModel):
    """Purposes a Global Privacy Control signal opts out of (sale, sharing, targeted use)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opt_out: tuple[str, ...] = ()


class TcfMap(BaseModel):
    """Our purpose -> the TCF v2.2 purposes (1..11) whose consent bits must all be set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purposes: dict[str, tuple[int, ...]] = {}


class SignalMap(BaseModel):
    """signals.yaml: how GPC and TCF signals map onto the pack's purposes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpc: GpcMap = GpcMap()
    tcf: TcfMap = TcfMap()

    @classmethod
    def load(cls, directory: Path, purposes: PurposeCatalog) -> SignalMap:
        """Read `directory`/signals.yaml (absent = no signal is mapped); PolicyError if wrong."""
        path = directory / SIGNALS_FILE
        if not path.is_file():
            return cls()
        try:
            found = cls.model_validate(yaml.safe_load(path.read_bytes()) or {})
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML ({exc})") from None
        except PydanticValidationError as exc:
            raise PolicyError(f"{path}: {describe(exc)}") from None
        for pid in (*found.gpc.opt_out, *found.tcf.purposes):
            if pid not in purposes.purposes or not purposes.get(pid).needs_consent:
                raise PolicyError(
                    f"{path}: {pid!r} is not a consent-based purpose of purposes.yaml"
                )
        for pid, ids in found.tcf.purposes.items():
            if not ids or not all(1 <= i <= 11 for i in ids):
                raise PolicyError(f"{path}: tcf purposes of {pid!r} must be TCF ids 1..11")
        return found

    def tcf_states(self, tc: TCString) -> dict[str, bool]:
        """Per mapped purpose: True if the TC string consents to all its TCF purposes."""
        return {
            pid: all(i in tc.purpose_consents for i in ids)
            for pid, ids in self.tcf.purposes.items()
        }


@dataclass(frozen=True, slots=True)
class SignalOutcome:
    """What a signal did to one purpose, and why (returned to the app and audited)."""

    purpose: str
    action: Action
    state: str
    reason: str


def gpc_enabled(headers: Mapping[str, str]) -> bool:
    """True if the request headers carry `Sec-GPC: 1` (header names are case-insensitive)."""
    if not isinstance(headers, Mapping) or len(headers) > MAX_HEADERS:
        raise ValidationError(f"headers must be a mapping of at most {MAX_HEADERS} entries")
    for name, value in headers.items():
        if isinstance(name, str) and name.strip().lower() == GPC_HEADER:
            return isinstance(value, str) and value.strip() == "1"
    return False


def plan(
    records: Sequence[Any], current: str, method: str, wants_given: bool, purpose: str
) -> SignalOutcome:
    """Apply the precedence rules to one purpose: records are the purpose's ledger records
    (oldest first, with `.state` and `.method`), `current` its effective state now."""
    if wants_given and current == "given":
        return SignalOutcome(purpose, "unchanged", current, "already given")
    if not wants_given and records and records[-1].state in ("refused", "withdrawn"):
        return SignalOutcome(purpose, "unchanged", current, "already refused or withdrawn")
    target = "given" if wants_given else ("withdrawn" if current == "given" else "refused")
    last_signal = max((i for i, r in enumerate(records) if r.method == method), default=None)
    if last_signal is not None and any(r.method in FIRST_PARTY for r in records[last_signal + 1 :]):
        return SignalOutcome(
            purpose, "overridden", current, f"a first-party choice was made after the last {method}"
        )
    if wants_given:
        for r in reversed(records):
            if r.method in FIRST_PARTY and r.state == "given":
                break
            if r.method in FIRST_PARTY or (r.method == "gpc" and r.state != "given"):
                return SignalOutcome(
                    purpose,
                    "overridden",
                    current,
                    "a signal never grants what the user refused or opted out of",
                )
    return SignalOutcome(purpose, "recorded", target, f"{method} signal")
