"""Hybrid: a weighted blend of recommenders with a defined cold-start fallback, then rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tactful.recommend.rules import Rule, apply_rules
from tactful.recommend.types import (
    CatalogItem,
    Interaction,
    MinimizedView,
    Recommender,
    ScoredItem,
    best_first,
    on_grid,
)

_new = tuple.__new__
# A lone component's last answer by its name: (weight, k, exclude), its list, the items.
LoneMemo = dict[
    str, tuple[tuple[float, int, frozenset[str]], Sequence[ScoredItem], list[ScoredItem]]
]
DEFAULT_WEIGHTS: Mapping[str, float] = {"item_item": 1.0, "content": 0.1, "popularity": 0.05}


class HybridRecommender:
    """Blends its components' lists with per-app weights; explains each item by its top signal.

    Each weighted component is asked for a pool of candidates (a lone component without rules
    for just k); its scores are divided by its best score (so every signal is on a 0..1
    scale) and summed with the component's weight (`weights[name]`, default 1.0 for a
    component not named there). The cold-start order
    falls out of which components can answer: with a history, collaborative + content +
    popularity; with only declared preferences, content + popularity; with nothing,
    popularity (trending when it decays). Then the app's rules apply. `learn`/`forget`
    reach every component, so unlearning is exact whenever the components' is.
    """

    name = "hybrid"

    def __init__(
        self,
        components: Sequence[Recommender],
        weights: Mapping[str, float] | None = None,
        rules: Sequence[Rule] = (),
        pool: int = 100,
    ) -> None:
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be distinct, got {names}")
        if weights is not None and any(w < 0 for w in weights.values()):
            raise ValueError("blend weights must be >= 0")
        if pool < 1:
            raise ValueError("pool must be >= 1")
        self.components = list(components)
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.rules = list(rules)
        self.pool = pool
        self.catalog: dict[str, CatalogItem] = {}

    def weight(self, name: str) -> float:
        """The blend weight of one component."""
        return self.weights.get(name, 1.0)

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        """Fit every component from scratch."""
        self.catalog = {c.item_id: c for c in catalog}
        for c in self.components:
            c.fit(bundles, catalog)

    def learn(self, bundle: Sequence[Interaction]) -> None:
        """Add one contributor to every component."""
        for c in self.components:
            c.learn(bundle)

    def forget(self, bundle: Sequence[Interaction]) -> None:
        """Remove one contributor from every component."""
        for c in self.components:
            c.forget(bundle)

    def relearn(self, old: Sequence[Interaction], new: Sequence[Interaction]) -> None:
        """Replace one contributor's learned bundle `old` by `new` in every component: its
        own `relearn` where it has one (item-item), else `forget(old)` then `learn(new)`; an
        empty bundle is neither forgotten nor learned."""
        for c in self.components:
            relearn = getattr(c, "relearn", None)
            if relearn is not None and old and new:
                relearn(old, new)
                continue
            if old:
                c.forget(old)
            if new:
                c.learn(new)

    def recommend(
        self,
        view: MinimizedView,
        k: int,
        exclude: frozenset[str],
        memo: LoneMemo | None = None,
    ) -> list[ScoredItem]:
        """The k best items of the blend, after the app's rules; none of `exclude`.

        `memo`, a dict the caller keeps for repeated calls, lets a lone component's answer
        skip the normalization when it equals the last one (see `_alone`).
        """
        if k <= 0:
            return []
        weights = self.weights
        active = [c for c in self.components if weights.get(c.name, 1.0) != 0]
        # One component and no rules: nothing to blend, so it is asked for the k items only
        # (a pool is there for the blend and the rules to choose from).
        if len(active) == 1 and not self.rules:
            answer, listed = self._alone(active[0], view, k, exclude, memo)
            if answer is not None:
                return answer
            lists = [(self.weight(active[0].name), listed)]
        else:
            pool = max(self.pool, k)
            lists = [
                (
                    self.weight(c.name),
                    [s for s in c.recommend(view, pool, exclude) if s.item not in exclude],
                )
                for c in active
            ]
        blended: dict[str, float] = {}
        best: dict[str, tuple[float, ScoredItem]] = {}
        for w, listed in lists:
            top = max((s.score for s in listed), default=0.0)
            if top <= 0:
                continue
            for s in listed:
                raw, item = s.score, s.item
                part = w * (raw if not raw < 0.0 else 0.0) / top  # max(raw, 0.0), inline
                summed = blended.get(item)
                if summed is None:
                    blended[item] = part
                    best[item] = (part, s)
                else:
                    blended[item] = summed + part
                    if part > best[item][0]:
                        best[item] = (part, s)
        # Compared rounded to 1e-9 (`on_grid`): decayed popularity summed in another order
        # (after learn/forget) must tie, and so rank, the way a refit does.
        keyed = sorted(zip(best_first(blended.values()), blended, strict=True))
        if self.rules:
            out = []
            for _, i in keyed:
                reason = best[i][1]
                out.append(ScoredItem(i, blended[i], reason.signal, reason.explanation))
            out = apply_rules(out, self.rules, view, self.catalog, exclude)
            return [s for s in out if s.item not in exclude][:k]
        # Without rules the k first are the answer (the lists hold no excluded item): only
        # they are made into items.
        out = []
        for _, i in keyed[:k]:
            reason = best[i][1]
            out.append(_new(ScoredItem, (i, blended[i], reason.signal, reason.explanation)))
        return out

    def _alone(
        self,
        component: Recommender,
        view: MinimizedView,
        k: int,
        exclude: frozenset[str],
        memo: LoneMemo | None,
    ) -> tuple[list[ScoredItem] | None, list[ScoredItem]]:
        """A lone component's k items as the blend would give them (its normalized scores,
        order and ties) without the blend's bookkeeping, and its list less `exclude`; None
        for the items when the blend must decide (nothing scored above 0, or an item listed
        twice), which then takes the same list.

        The items are a function of the component's list, its weight, k and `exclude`
        alone: with a `memo`, a list equal to the last one under the same weight, k and
        `exclude` gives the last items again (a copy) without normalizing them again.
        """
        w = self.weight(component.name)
        given = list(component.recommend(view, k, exclude))  # ours: kept, never mutated
        key = (w, k, exclude)
        last = memo.get(component.name) if memo is not None else None
        if last is not None and last[0] == key and last[1] == given:
            return list(last[2]), []
        listed = []
        items = set()
        top = 0.0
        for s in given:
            if s.item in exclude:
                continue
            listed.append(s)
            items.add(s.item)
            if s.score > top:
                top = s.score
        if not top > 0 or len(items) != len(listed):
            return None, listed
        rows = []
        for s in listed:
            raw = s.score
            score = w * (raw if not raw < 0.0 else 0.0) / top  # max(raw, 0.0), inline
            # tuple.__new__ is what ScoredItem(...) runs, without its Python frame; the
            # items are distinct, so the sort never compares past the item id.
            rows.append(
                (
                    -on_grid(score),
                    s.item,
                    _new(ScoredItem, (s.item, score, s.signal, s.explanation)),
                )
            )
        rows.sort()
        answer = [row[2] for row in rows[:k]]
        if memo is not None:
            memo[component.name] = (key, given, answer)
        return list(answer), listed
