"""Business rules an app declares: boost, bury, pin or filter items, optionally only in a context.

A rule matches items by attribute (`item`) and applies only when the request matches `when`:
keys `context.<name>` read MinimizedView.context, `fields.<name>` read the allowed profile
fields, and `segment` names a segment of segments.yaml (or a list: any of them) that the gate
matched for this decision. A condition value is a scalar (equality), a list (one of), or a
mapping of operators {"lt", "le", "gt", "ge", "ne"} to a value. Item keys: `item` (the id),
`category` (one of the item's categories), or an attribute name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tactful.recommend.types import CatalogItem, MinimizedView, ScoredItem

Action = Literal["boost", "bury", "pin", "filter"]
ACTIONS = ("boost", "bury", "pin", "filter")
OPERATORS = ("lt", "le", "gt", "ge", "ne")
SEGMENT = "segment"


@dataclass(frozen=True, slots=True)
class Rule:
    """One business rule, e.g. Rule("boost", item={"length": {"lt": 30}},
    when={"context.device": "mobile", "context.daypart": "evening"}, amount=0.5,
    reason="short items for your evening on mobile").

    `amount` is added (boost) or subtracted (bury) on the hybrid's 0..1 score scale; `pin`
    puts the matching items at `position` (0 = first); `filter` removes them. `reason` is
    shown to the user as part of the explanation of boosted and pinned items.
    """

    action: Action
    item: Mapping[str, object] = field(default_factory=dict)
    when: Mapping[str, object] = field(default_factory=dict)
    amount: float = 0.5
    position: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"rule action {self.action!r} is not one of {', '.join(ACTIONS)}")
        if not self.item:
            raise ValueError(f"a {self.action} rule needs `item` conditions to match items")
        for key in self.when:
            if key != SEGMENT and not key.startswith(("context.", "fields.")):
                raise ValueError(
                    f"rule condition {key!r} must be 'segment' or start with 'context.' or "
                    "'fields.'"
                )
        if SEGMENT in self.when and not self.segments():
            raise ValueError("a rule's 'segment' condition names a segment id or a list of them")
        for cond in [v for k, v in self.when.items() if k != SEGMENT] + list(self.item.values()):
            if isinstance(cond, Mapping):
                bad = set(cond) - set(OPERATORS)
                if bad:
                    raise ValueError(
                        f"unknown rule operator(s) {sorted(bad)}; use {', '.join(OPERATORS)}"
                    )
        if self.amount < 0 or self.position < 0:
            raise ValueError("rule amount and position must be >= 0")

    def segments(self) -> frozenset[str]:
        """The segment ids the `segment` condition names (any of them must be matched)."""
        cond = self.when.get(SEGMENT)
        if isinstance(cond, str):
            return frozenset({cond})
        if isinstance(cond, list | tuple | set | frozenset) and all(
            isinstance(c, str) for c in cond
        ):
            return frozenset(cond)
        return frozenset()

    def applies(self, view: MinimizedView) -> bool:
        """True if the request's context, profile fields and segments satisfy `when`."""
        for key, cond in self.when.items():
            if key == SEGMENT:
                if not self.segments() & view.segments:
                    return False
                continue
            scope, name = key.split(".", 1)
            source = view.context if scope == "context" else view.fields
            if name not in source or not _holds(source[name], cond):
                return False
        return True

    def matches(self, item: CatalogItem) -> bool:
        """True if the catalog item satisfies every `item` condition."""
        for key, cond in self.item.items():
            if key == "item":
                if not _holds(item.item_id, cond):
                    return False
            elif key == "category":
                if not any(_holds(c, cond) for c in item.categories):
                    return False
            elif key not in item.attributes or not _holds(item.attributes[key], cond):
                return False
        return True


def _holds(value: object, cond: object) -> bool:
    if isinstance(cond, Mapping):
        try:
            return all(_compare(value, op, ref) for op, ref in cond.items())
        except TypeError:
            return False  # e.g. a string attribute compared with a number: no match
    if isinstance(cond, list | tuple | set | frozenset):
        return value in cond
    return value == cond


def _compare(value: object, op: str, ref: object) -> bool:
    if op == "ne":
        return value != ref
    v, r = value, ref
    if op == "lt":
        return bool(v < r)  # type: ignore[operator]
    if op == "le":
        return bool(v <= r)  # type: ignore[operator]
    if op == "gt":
        return bool(v > r)  # type: ignore[operator]
    return bool(v >= r)  # type: ignore[operator]


def apply_rules(
    scored: Sequence[ScoredItem],
    rules: Sequence[Rule],
    view: MinimizedView,
    catalog: Mapping[str, CatalogItem],
    exclude: frozenset[str],
) -> list[ScoredItem]:
    """Re-rank a best-first list under the rules that apply to this request.

    Filters drop items, boosts and buries move scores, pins place matching catalog items
    (candidates or not) at their position. Items of `exclude` never come back through a pin.
    """
    active = [r for r in rules if r.applies(view)]
    if not active:
        return list(scored)
    out: list[ScoredItem] = []
    for s in scored:
        item = catalog.get(s.item)
        if item is None:
            out.append(s)
            continue
        hits = [r for r in active if r.matches(item)]
        if any(r.action == "filter" for r in hits):
            continue
        score, why = s.score, s.explanation
        for r in hits:
            if r.action == "boost":
                score += r.amount
                why = f"{why} Promoted: {r.reason}." if r.reason else why
            elif r.action == "bury":
                score -= r.amount
        out.append(ScoredItem(s.item, score, s.signal, why))
    out.sort(key=lambda s: -s.score)
    for r in (r for r in active if r.action == "pin"):
        pinned = [
            i
            for i in sorted(catalog)
            if i not in exclude
            and r.matches(catalog[i])
            and not any(f.matches(catalog[i]) for f in active if f.action == "filter")
        ]
        for n, item_id in enumerate(pinned):
            rest = [s for s in out if s.item != item_id]
            score = rest[0].score if rest else 1.0
            why = f"Featured: {r.reason}." if r.reason else "Featured by the app."
            rest.insert(min(r.position + n, len(rest)), ScoredItem(item_id, score, "rule", why))
            out = rest
    return out
