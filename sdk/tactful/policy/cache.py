"""The gate's subject cache: a subject's decoded state, kept between calls while it holds.

An entry is used only when the probe of this call (one statement, `tactful.store.probe`; on
SQLite answered from memory while no other connection committed) shows the same subject and
the same mark as when the entry was read, under the same policy object, and before the
entry's expiry: the earliest of a consent expiry, the next new year
(age facts are judged by year of birth) and `max_age` seconds after it was read. So a write
from any process (consent, settings, objection, profile, event, restriction, erasure) is seen
by the next call; the cache saves the reads and decryptions, never a check.

One exception keeps an entry: when the mark moved only because events were added (the
common flow: the user viewed something, the app asks what next), the state still holds; the
entry takes the new mark, drops what was derived from the history, and the history is
brought up to date by reading the added events alone (`history_stale`). The expiry stays
that of the last full read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tactful.policy.engine import CompiledPolicy, SubjectState
from tactful.settings import Settings
from tactful.store import SubjectRef, now

DEFAULT_CAPACITY = 4096
DEFAULT_MAX_AGE = 30.0
MEMO_LIMIT = 32


@dataclass(slots=True)
class CachedSubject:
    """One subject's state as the gate read it, and what the view read of it so far."""

    subject: SubjectRef
    mark: tuple[object, ...]
    policy: CompiledPolicy
    expires: float  # the POSIX time after which the entry is not used
    state: SubjectState
    settings: Settings
    # Decrypted profile fields by the set of categories a decision allowed (only those read).
    fields: dict[frozenset[str], dict[str, object]] = field(default_factory=dict)
    history: tuple[Any, ...] | None = None  # the interactions, once a decision allowed them
    history_seq: int = 0  # the latest event write number among them
    history_stale: bool = False  # events were added since: read those numbered above it
    # Segment ids stored per purpose (None until read): memberships are written on change only.
    held: dict[str, frozenset[str]] | None = None
    # What this state decides, per (purpose, context): a decision is a function of the
    # policy, the state, the purpose and the context alone (no clock), so only its id is new
    # per call. Bounded: an app passing ever-new context values cannot grow it.
    decisions: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = field(default_factory=dict)
    # Per-call results derived from this entry alone, by key (segments, exclusions).
    derived: dict[object, Any] = field(default_factory=dict)


def remember(table: dict[Any, Any], key: object, value: Any) -> Any:
    """Keep `value` under `key` in a memo table (an entry's, or the gate's for unknown users),
    cleared past MEMO_LIMIT so that ever-new keys cannot grow it; returns `value`."""
    if len(table) >= MEMO_LIMIT:
        table.clear()
    table[key] = value
    return value


def clock() -> float:
    """The POSIX time entries are read and expire by (the store's clock)."""
    return now().timestamp()


def expiry(read_at: float, max_age: float, consent_expiries: list[datetime]) -> float:
    """When an entry read at `read_at` stops being used (see the module docstring)."""
    moment = datetime.fromtimestamp(read_at, UTC)
    new_year = datetime(moment.year + 1, 1, 1, tzinfo=UTC).timestamp()
    soonest = min(
        [read_at + max_age, new_year]
        + [e.timestamp() for e in consent_expiries if e.timestamp() > read_at]
    )
    return soonest


class SubjectCache:
    """A bounded LRU of `CachedSubject` by subject id; thread-safe.

    `capacity` 0 turns caching off (every call reads and decrypts the subject's data).
    It holds decrypted personal data in this process's memory, as the DEK cache holds keys:
    see docs/architecture.md, "The gate's subject cache", for the trade-off.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_age: float = DEFAULT_MAX_AGE) -> None:
        if capacity < 0 or max_age < 0:
            raise ValueError("capacity and max_age must be >= 0")
        self.capacity = capacity
        self.max_age = max_age
        self._entries: OrderedDict[int, CachedSubject] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        subject: SubjectRef,
        mark: tuple[object, ...],
        policy: CompiledPolicy,
        events_added: Callable[[tuple[object, ...]], int | None] | None = None,
    ) -> CachedSubject | None:
        """The entry, if it still holds for this probe; a stale entry is dropped.

        `events_added(old_mark)` says whether the mark moved only by events added
        (`Probe.events_added_since`): such an entry is kept, advanced to `mark`, its derived
        results dropped and its history marked stale.
        """
        with self._lock:
            entry = self._entries.get(subject.id)
            if entry is None:
                return None
            if entry.subject != subject or entry.policy is not policy or clock() >= entry.expires:
                del self._entries[subject.id]
                return None
            if entry.mark != mark:
                if events_added is None or events_added(entry.mark) is None:
                    del self._entries[subject.id]
                    return None
                entry.mark = mark
                entry.derived = {}
                entry.history_stale = True
            self._entries.move_to_end(subject.id)
            return entry

    def put(self, entry: CachedSubject) -> None:
        """Keep an entry (the least recently used goes beyond capacity)."""
        if self.capacity == 0:
            return
        with self._lock:
            self._entries[entry.subject.id] = entry
            self._entries.move_to_end(entry.subject.id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def evict(self, subject_id: int) -> None:
        """Forget one subject (erased in this process)."""
        with self._lock:
            self._entries.pop(subject_id, None)

    def clear(self) -> None:
        """Forget every entry (policy reload, close)."""
        with self._lock:
            self._entries.clear()
