"""The only things a recommender ever sees: minimized views, interactions and catalog items.

Nothing here names a user. A recommender learns from anonymous bundles of interactions (one
bundle per contributor, with no identifier) and answers for one MinimizedView at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from math import floor
from typing import NamedTuple, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Interaction:
    """One consented behavioral event: an item, how strongly, and when (epoch seconds)."""

    item: str
    kind: str = "view"
    weight: float = 1.0
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """An item of the catalog (not personal data): id, categories/tags and free attributes."""

    item_id: str
    title: str = ""
    categories: tuple[str, ...] = ()
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MinimizedView:
    """What the policy allowed a recommender to read about one user for one decision.

    `fields` holds only the profile fields of allowed data categories, `history` only the
    allowed events (oldest first), `context` only the allowed request context, `segments` the
    segments the gate matched on this view. No identifier.
    """

    fields: Mapping[str, object] = field(default_factory=dict)
    history: tuple[Interaction, ...] = ()
    context: Mapping[str, str] = field(default_factory=dict)
    categories_read: frozenset[str] = frozenset()
    # Segments the gate evaluated and matched for this decision (ids from segments.yaml).
    segments: frozenset[str] = frozenset()


class ScoredItem(NamedTuple):
    """A recommended item with its score, the signal that produced it and a readable reason.

    A named tuple (immutable; made in every recommender's inner loop, where a frozen
    dataclass costs about twice as much to build).
    """

    item: str
    score: float
    signal: str
    explanation: str


_BEYOND = 10**320  # above the grid value of any finite float


def on_grid(score: float) -> int:
    """A score on a 1e-9 grid, the key recommenders rank by (then the item id): scores that
    differ only by float rounding (sums taken in another order after learn/forget) tie.

    `floor(score * 1e9 + 0.5)` rather than `round(score, 9)`, which converts through decimal
    digits and costs about eight times as much in a ranking's inner loop. An app's recommender
    may score out of range: infinities rank at the ends, NaN below everything.
    """
    try:
        return floor(score * 1e9 + 0.5)
    except OverflowError:  # ±inf, or a finite score whose product overflows to it
        return _BEYOND if score > 0 else -_BEYOND
    except ValueError:  # NaN
        return -_BEYOND - 1


def best_first(scores: Collection[float]) -> list[int]:
    """`-on_grid(score)` of each score, in order: sort keys that put the best score first.

    Made in one pass with `on_grid`'s arithmetic inlined (a key function per item was a third
    of a blend's cost); a collection holding an infinite or NaN score takes `on_grid` itself.
    """
    try:
        return [-floor(score * 1e9 + 0.5) for score in scores]
    except (OverflowError, ValueError):
        return [-on_grid(score) for score in scores]


@runtime_checkable
class Recommender(Protocol):
    """A pure recommender: learns from anonymous interaction bundles, answers for one view.

    `fit` replaces what was learned; `forget` removes exactly one earlier contributor's bundle
    (erasure, consent withdrawal), `learn` adds one. `recommend` never returns an item of
    `exclude`, and returns at most k items, best first.
    """

    name: str

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        """Learn from scratch from one bundle of interactions per contributor."""
        ...

    def learn(self, bundle: Sequence[Interaction]) -> None:
        """Add one contributor's interactions to what was learned."""
        ...

    def forget(self, bundle: Sequence[Interaction]) -> None:
        """Remove one contributor's interactions as if they had never been learned."""
        ...

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        """Return at most k items for the view, best first, none of them in `exclude`."""
        ...
