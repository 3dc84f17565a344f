"""Diversity and discovery: MMR re-ranking driven by a discovery level, plus an exploration slot.

At discovery level L (0..1) items are picked greedily by

    (1 - L) * f_i  -  L * (f_i + max_{j picked} sim(i, j)) / 2

where f_i is the item's relevance divided by the pool's best (how familiar it is) and sim is
the Jaccard overlap of the two items' categories. L = 0 is the plain top k; small L mostly
breaks up runs of same-category items (maximal marginal relevance); beyond L = 2/3 the list
deliberately moves away from the closest matches. With L > 0 the last slot goes to the best
candidate whose categories all lie outside the user's usual ones (exploration). Items an app
rule pinned (signal "rule") keep the head of the list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from math import isfinite

from tactful.recommend.types import CatalogItem, Interaction, ScoredItem

USUAL_SHARE = 0.1  # a category is "usual" if at least this share of the history carries it


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Category overlap of two items, 0 when either has none."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def usual_categories(
    history: Sequence[Interaction], catalog: Mapping[str, CatalogItem]
) -> frozenset[str]:
    """The categories carried by at least USUAL_SHARE of the user's history items."""
    items = {e.item for e in history if e.item in catalog}
    counts = Counter(c for i in items for c in set(catalog[i].categories))
    return frozenset(c for c, n in counts.items() if n >= USUAL_SHARE * len(items))


def rerank(
    pool: Sequence[ScoredItem],
    k: int,
    level: float,
    catalog: Mapping[str, CatalogItem],
    history: Sequence[Interaction] = (),
    explore: Sequence[ScoredItem] = (),
    *,
    usual: frozenset[str] | None = None,
) -> list[ScoredItem]:
    """Pick k items of a best-first pool at discovery `level`, with an exploration slot.

    `explore` holds further candidates for the exploration slot (e.g. the popularity list)
    used when the pool has no item outside the user's usual categories; the caller has
    already removed excluded items from both lists. `usual` may hand in
    `usual_categories(history, catalog)` when the caller kept it (the gate's plan does).
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError("discovery level must be between 0 and 1")
    if k <= 0:
        return []
    if level == 0.0:
        return list(pool[:k])
    pinned = [s for s in pool if s.signal == "rule"][:k]  # the app's pins keep the head
    if pinned:
        rest = [s for s in pool if s.signal != "rule"]
        return pinned + rerank(rest, k - len(pinned), level, catalog, history, explore, usual=usual)
    cats = {
        s.item: frozenset(catalog[s.item].categories)
        for s in [*pool, *explore]
        if s.item in catalog
    }
    if usual is None:
        usual = usual_categories(history, catalog)
    slot = _exploration(pool, explore, usual, cats) if usual and k > 1 else None
    rest = [s for s in pool if slot is None or s.item != slot.item]
    picked = _mmr(rest, k - (slot is not None), level, cats)
    return picked + ([slot] if slot is not None else [])


def _mmr(
    pool: Sequence[ScoredItem], k: int, level: float, cats: Mapping[str, frozenset[str]]
) -> list[ScoredItem]:
    top = max((s.score for s in pool), default=0.0)
    fam = [s.score / top if top > 0 else 0.0 for s in pool]
    if not all(isfinite(f) for f in fam):
        # NaN or infinity (an app's recommender): values may be NaN, and the comparison of
        # (value, -index) tuples decides, as defined.
        return _mmr_by_key(pool, k, level, fam, cats)
    sets = [cats.get(s.item, _NONE) for s in pool]
    redundancy = [0.0] * len(pool)
    left = list(range(len(pool)))
    picked: list[ScoredItem] = []
    while left and len(picked) < k:
        # The first (lowest) index of the largest value: max() over (value, -index).
        best, value = -1, 0.0
        for i in left:
            v = (1.0 - level) * fam[i] - level * (fam[i] + redundancy[i]) / 2.0
            if best < 0 or v > value:
                best, value = i, v
        left.remove(best)
        picked.append(pool[best])
        mine = sets[best]
        if mine:
            for i in left:
                theirs = sets[i]
                if theirs:
                    overlap = len(theirs & mine) / len(theirs | mine)  # jaccard, inline
                    if overlap > redundancy[i]:
                        redundancy[i] = overlap
    return picked


def _mmr_by_key(
    pool: Sequence[ScoredItem],
    k: int,
    level: float,
    fam: list[float],
    cats: Mapping[str, frozenset[str]],
) -> list[ScoredItem]:
    """MMR as defined, by max() over (value, -index): for pools with a NaN or an infinite
    score, whose values may be NaN."""
    redundancy = [0.0] * len(pool)
    left = list(range(len(pool)))
    picked: list[ScoredItem] = []
    while left and len(picked) < k:
        best = max(
            left,
            key=lambda i: (
                (1.0 - level) * fam[i] - level * (fam[i] + redundancy[i]) / 2.0,
                -i,
            ),
        )
        left.remove(best)
        chosen = pool[best]
        picked.append(chosen)
        mine = cats.get(chosen.item, _NONE)
        for i in left:
            redundancy[i] = max(redundancy[i], jaccard(cats.get(pool[i].item, _NONE), mine))
    return picked


_NONE: frozenset[str] = frozenset()


def _exploration(
    pool: Sequence[ScoredItem],
    explore: Sequence[ScoredItem],
    usual: frozenset[str],
    cats: Mapping[str, frozenset[str]],
) -> ScoredItem | None:
    for s in [*pool, *explore]:
        mine = cats.get(s.item, frozenset())
        if mine and not mine & usual:
            named = ", ".join(sorted(mine))
            return ScoredItem(
                s.item,
                s.score,
                s.signal,
                f"Something different for you ({named}), outside what you usually choose.",
            )
    return None
