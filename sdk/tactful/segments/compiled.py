"""Segments compiled once at load to predicate closures, evaluated on a minimized view.

Evaluation sees only what the gate allowed: the view's profile fields and events (the
categories of one decision), the user's settings, and the catalog's public item categories.
A segment whose rule reads a category the decision withholds is not evaluated at all; the
evaluation names it and the withheld categories.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tactful.segments.model import Behavior, Condition, Segment, SegmentFile, reads_of
from tactful.store import ProfileSchema, category_allowed

DAY = 86_400.0


class EventLike(Protocol):
    """An event of a minimized view (tactful.recommend.Interaction satisfies it)."""

    @property
    def item(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def ts(self) -> float: ...


class ViewLike(Protocol):
    """A minimized view (tactful.recommend.MinimizedView satisfies it)."""

    @property
    def fields(self) -> Mapping[str, object]: ...

    @property
    def history(self) -> Sequence[EventLike]: ...


@dataclass(frozen=True, slots=True)
class Facts:
    """What one evaluation may look at."""

    fields: Mapping[str, object]
    settings: Mapping[str, object]
    history: Sequence[EventLike]
    items_in: Callable[[str], frozenset[str]]  # catalog category -> item ids (public)
    now: float


Check = Callable[[Facts], bool]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A segment not evaluated for one decision, and the categories the decision withholds."""

    segment: str
    withheld: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The segments of one decision: those matched, and those skipped with the reason."""

    purpose: str
    matched: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    """A segment with its exact data categories and its compiled rule."""

    id: str
    description: str
    purposes: frozenset[str]
    reads: frozenset[str]
    check: Check


class CompiledSegments:
    """Every segment of a pack, compiled; `evaluate` runs those of a purpose on one view."""

    def __init__(self, segments: SegmentFile, schema: ProfileSchema) -> None:
        self.segments: dict[str, CompiledSegment] = {
            s.id: _compile_segment(s, schema) for s in segments.segments
        }
        self._by_purpose: dict[str, tuple[CompiledSegment, ...]] = {}
        for seg in self.segments.values():
            for pid in seg.purposes:
                self._by_purpose[pid] = (*self._by_purpose.get(pid, ()), seg)

    def ids(self) -> list[str]:
        """Segment ids in declaration order."""
        return list(self.segments)

    def for_purpose(self, purpose: str) -> tuple[CompiledSegment, ...]:
        """The segments a purpose uses (none for most purposes)."""
        return self._by_purpose.get(purpose, ())

    def evaluate(
        self,
        purpose: str,
        allowed: frozenset[str],
        view: ViewLike,
        settings: Mapping[str, object],
        items_in: Callable[[str], frozenset[str]],
        now: float | None = None,
    ) -> Evaluation:
        """Evaluate the purpose's segments on the view; `allowed` is the decision's `read`.

        A segment reading a category outside `allowed` is skipped, never evaluated.
        """
        segments = self.for_purpose(purpose)
        if not segments:
            return Evaluation(purpose)
        facts = Facts(
            view.fields,
            settings,
            view.history,
            items_in,
            time.time() if now is None else now,
        )
        matched: list[str] = []
        skipped: list[Skipped] = []
        for seg in segments:
            withheld = tuple(sorted(c for c in seg.reads if not category_allowed(c, allowed)))
            if withheld:
                skipped.append(Skipped(seg.id, withheld))
            elif seg.check(facts):
                matched.append(seg.id)
        return Evaluation(purpose, tuple(matched), tuple(skipped))


def _compile_segment(segment: Segment, schema: ProfileSchema) -> CompiledSegment:
    return CompiledSegment(
        id=segment.id,
        description=segment.description,
        purposes=frozenset(segment.purposes),
        reads=reads_of(segment.when, schema),
        check=_compile(segment.when),
    )


def _compile(c: Condition) -> Check:
    kind = c.kind()
    if kind == "all":
        parts = tuple(_compile(x) for x in c.all_ or ())
        return lambda f: all(p(f) for p in parts)
    if kind == "any":
        parts = tuple(_compile(x) for x in c.any_ or ())
        return lambda f: any(p(f) for p in parts)
    if kind == "not":
        inner = _compile(c.not_) if c.not_ is not None else (lambda _f: False)
        return lambda f: not inner(f)
    if kind == "behavior":
        assert c.behavior is not None
        return _behavior(c.behavior)
    name = c.field if kind == "field" else c.setting
    assert name is not None
    test = _comparison(c.operators())
    if kind == "field":
        return lambda f: test(f.fields.get(name), name in f.fields)
    return lambda f: test(f.settings.get(name), name in f.settings)


def _comparison(ops: Mapping[str, object]) -> Callable[[object, bool], bool]:
    """One closure testing every operator; a missing value satisfies only `present: false`."""
    tests: list[Callable[[object], bool]] = []
    present = ops.get("present")
    for op, ref in ops.items():
        if op == "present":
            continue
        tests.append(_operator(op, ref))

    def test(value: object, has: bool) -> bool:
        has = has and value is not None
        if present is not None and present != has:
            return False
        if not has:
            return not tests
        return all(t(value) for t in tests)

    return test


def _operator(op: str, ref: object) -> Callable[[object], bool]:
    if op == "eq":
        return lambda v: bool(v == ref)
    if op == "ne":
        return lambda v: bool(v != ref)
    if op in ("in", "not_in"):
        refs = tuple(ref) if isinstance(ref, tuple) else (ref,)
        if op == "in":
            return lambda v: v in refs
        return lambda v: v not in refs
    if op == "contains":
        return lambda v: isinstance(v, list | tuple) and ref in v
    bound = float(ref)  # type: ignore[arg-type]
    compare: dict[str, Callable[[float], bool]] = {
        "lt": lambda x: x < bound,
        "le": lambda x: x <= bound,
        "gt": lambda x: x > bound,
        "ge": lambda x: x >= bound,
    }
    number = compare[op]
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and number(float(v))


def _behavior(b: Behavior) -> Check:
    kinds = frozenset(b.kinds) if b.kinds is not None else None
    window = b.within_days * DAY if b.within_days is not None else None
    category, distinct = b.item_category, b.count == "items"
    low, high = b.at_least, b.at_most

    def check(f: Facts) -> bool:
        members = f.items_in(category) if category is not None else None
        since = f.now - window if window is not None else None
        items: set[str] = set()
        n = 0
        for e in f.history:
            if kinds is not None and e.kind not in kinds:
                continue
            if since is not None and e.ts < since:
                continue
            if members is not None and e.item not in members:
                continue
            n += 1
            items.add(e.item)
        found = len(items) if distinct else n
        return found >= low and (high is None or found <= high)

    return check
