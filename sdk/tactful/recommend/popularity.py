"""Popularity: how many distinct contributors interacted with each item, optionally decayed."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from tactful.recommend.types import CatalogItem, Interaction, MinimizedView, ScoredItem, on_grid

DAY = 86_400.0


class PopularityRecommender:
    """Ranks items by the number of distinct contributors who interacted with them.

    With `half_life_days`, each contributor's weight for an item decays with the age of their
    latest interaction with it (relative to `now`, epoch seconds, fixed when the model is built),
    which gives a trending list. `learn`/`forget` add or remove one contributor exactly.
    """

    name = "popularity"

    def __init__(self, half_life_days: float | None = None, now: float | None = None) -> None:
        if half_life_days is not None and half_life_days <= 0:
            raise ValueError("half_life_days must be positive")
        self.half_life_days = half_life_days
        self.now = time.time() if now is None else now
        self.counts: dict[str, float] = {}
        # Distinct contributors per item: an item leaves `counts` exactly when its last
        # contributor is forgotten, whatever rounding the decayed weights carry.
        self.contributors: dict[str, int] = {}
        self._ranking: list[tuple[str, float]] | None = None

    def _contribution(self, bundle: Sequence[Interaction]) -> dict[str, float]:
        latest: dict[str, float] = {}
        for i in bundle:
            latest[i.item] = max(latest.get(i.item, -math.inf), i.ts)
        if self.half_life_days is None:
            return dict.fromkeys(latest, 1.0)
        rate = math.log(2) / (self.half_life_days * DAY)
        return {item: math.exp(-rate * max(0.0, self.now - ts)) for item, ts in latest.items()}

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        """Count every bundle from scratch."""
        self.counts, self.contributors = {}, {}
        for bundle in bundles:
            self.learn(bundle)
        self._ranking = None

    def learn(self, bundle: Sequence[Interaction]) -> None:
        """Add one contributor."""
        for item, weight in self._contribution(bundle).items():
            self.counts[item] = self.counts.get(item, 0.0) + weight
            self.contributors[item] = self.contributors.get(item, 0) + 1
        self._ranking = None

    def forget(self, bundle: Sequence[Interaction]) -> None:
        """Remove one contributor exactly as they were added."""
        for item, weight in self._contribution(bundle).items():
            n = self.contributors.get(item, 0)
            if n <= 1:
                self.counts.pop(item, None)
                self.contributors.pop(item, None)
            else:
                self.counts[item] -= weight
                self.contributors[item] = n - 1
        self._ranking = None

    def ranking(self) -> list[tuple[str, float]]:
        """All counted items, most popular first (ties by item id).

        Scores are compared rounded to 1e-9 so that decayed sums added in a different order
        (after learn/forget) still tie the way a refit does.
        """
        if self._ranking is None:
            self._ranking = sorted(self.counts.items(), key=lambda kv: (-on_grid(kv[1]), kv[0]))
        return self._ranking

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        """The k most popular items not in `exclude` (the view is not used)."""
        out: list[ScoredItem] = []
        if k <= 0:
            return out
        reason = "Trending right now." if self.half_life_days else "Popular with many users."
        name, append = self.name, out.append
        for item, score in self.ranking():
            if item in exclude:
                continue
            append(_new(ScoredItem, (item, score, name, reason)))  # ScoredItem(...), frameless
            if len(out) == k:
                break
        return out


_new = tuple.__new__
