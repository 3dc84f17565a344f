"""Content-based: TF-IDF over item categories, tags and attributes, matched to the user's taste."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from tactful.recommend.types import CatalogItem, Interaction, MinimizedView, ScoredItem

# Declared-preference fields read from MinimizedView.fields (when the policy allowed them).
PREFERENCE_FIELDS = ("favorite_genres", "genres", "favorite_categories", "interests")
MAX_TEXTS = 65_536  # explanations kept per fit (one per pair of features named)


def item_features(item: CatalogItem) -> list[str]:
    """The feature tokens of a catalog item: its categories, tags and scalar attributes."""
    feats = [f"category:{c.lower()}" for c in item.categories]
    for key, value in item.attributes.items():
        if isinstance(value, str):
            values: Iterable[object] = [value]
        elif isinstance(value, list | tuple | set | frozenset):
            values = value
        else:
            continue  # numbers are for rules, not for taste
        feats += [f"{key}:{str(v).lower()}" for v in values if isinstance(v, str)]
    return feats


def declared_preferences(fields: Mapping[str, object]) -> list[str]:
    """The category tokens a user declared (a list, or a comma-separated string)."""
    out: list[str] = []
    for name in PREFERENCE_FIELDS:
        value = fields.get(name)
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            out += [f"category:{str(v).strip().lower()}" for v in value if str(v).strip()]
    return out


class ContentRecommender:
    """Ranks items by cosine similarity between their TF-IDF vector and the user's taste.

    Item vectors: TF-IDF over `item_features` (idf = ln((1 + n) / (1 + df)) + 1), L2-normalized.
    The user's taste is the sum of their history items' vectors (recent ones weigh more with
    `history_half_life`, in events) plus `preference_weight` per declared preference. It learns
    only from the catalog, so `learn`/`forget` leave it unchanged: no contributor is in it.
    """

    name = "content"

    def __init__(
        self, preference_weight: float = 1.0, history_half_life: float | None = None
    ) -> None:
        if preference_weight < 0:
            raise ValueError("preference_weight must be >= 0")
        if history_half_life is not None and history_half_life <= 0:
            raise ValueError("history_half_life must be positive (or None for equal weights)")
        self.preference_weight = preference_weight
        self.history_half_life = history_half_life
        self.items: list[str] = []
        self.index: dict[str, int] = {}
        self.features: list[str] = []
        self.feature_index: dict[str, int] = {}
        self.vectors = sp.csr_matrix((0, 0))
        # The vectors' CSR arrays as Python lists, for explaining a few items per call
        # (numpy's per-call cost on arrays of a few features is most of such a step).
        self._ptr: list[int] = [0]
        self._cols: list[int] = []
        self._vals: list[float] = []
        self._texts: dict[tuple[int, ...], str] = {}

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        """Build the item vectors from the catalog (bundles are not used)."""
        self.items, self.index, self.features, self.feature_index = [], {}, [], {}
        rows: list[int] = []
        cols: list[int] = []
        for item in catalog:
            if item.item_id in self.index:
                continue
            self.index[item.item_id] = len(self.items)
            self.items.append(item.item_id)
            for f in dict.fromkeys(item_features(item)):
                if f not in self.feature_index:
                    self.feature_index[f] = len(self.features)
                    self.features.append(f)
                rows.append(self.index[item.item_id])
                cols.append(self.feature_index[f])
        n, m = len(self.items), len(self.features)
        tf = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, m))
        df = np.asarray((tf > 0).sum(axis=0)).ravel()
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        weighted = tf @ sp.diags(idf)
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        self.vectors = sp.csr_matrix(sp.diags(1.0 / norms) @ weighted)
        self.vectors.sort_indices()
        self._ptr = self.vectors.indptr.tolist()
        self._cols = self.vectors.indices.tolist()
        self._vals = self.vectors.data.tolist()
        self._texts = {}

    def learn(self, bundle: Sequence[Interaction]) -> None:
        """Nothing to add: the model holds no contributor's data."""

    def forget(self, bundle: Sequence[Interaction]) -> None:
        """Nothing to remove: the model holds no contributor's data."""

    def taste(self, view: MinimizedView) -> np.ndarray:
        """The user's taste vector over `features` (zero when nothing is known)."""
        summed = [0.0] * len(self.features)
        n, half = len(view.history), self.history_half_life
        ptr, cols, vals = self._ptr, self._cols, self._vals
        for pos, event in enumerate(view.history):
            j = self.index.get(event.item)
            if j is not None:
                # The weighted sum of the history's item vectors, in history order (the
                # order, and so the rounding, of a sparse product of those rows).
                w = 1.0 if half is None else 0.5 ** ((n - 1 - pos) / half)
                for i in range(ptr[j], ptr[j + 1]):
                    summed[cols[i]] += vals[i] * w
        taste = np.asarray(summed)
        for f in declared_preferences(view.fields):
            col = self.feature_index.get(f)
            if col is not None:
                taste[col] += self.preference_weight
        return taste

    def scores(self, view: MinimizedView) -> np.ndarray:
        """Cosine similarity of every item (in `items` order) to the user's taste."""
        return self._scores(self.taste(view))

    def _scores(self, taste: np.ndarray) -> np.ndarray:
        norm = math.sqrt(float(taste @ taste))
        if norm == 0:
            return np.zeros(len(self.items))
        return np.asarray(self.vectors @ (taste / norm)).ravel()

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        """Items closest to the user's taste; [] when neither history nor preferences are known."""
        if k <= 0:
            return []
        taste = self.taste(view)
        if not taste.any():
            return []
        scores = self._scores(taste)
        declared = {f for f in declared_preferences(view.fields) if f in self.feature_index}
        for item in exclude:
            j = self.index.get(item)
            if j is not None:
                scores[j] = 0.0
        for event in view.history:  # an item the user already has is not a discovery
            j = self.index.get(event.item)
            if j is not None:
                scores[j] = 0.0
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > k:
            # Only the k best, and any tied with the k-th, are sorted: sorting every candidate
            # (nearly the whole catalog) was most of the call.
            kth = -np.partition(-scores[candidates], k - 1)[k - 1]
            candidates = candidates[scores[candidates] >= kth]
        order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
        picked = scores[order].tolist()
        ptr, cols, vals, weights = self._ptr, self._cols, self._vals, taste.tolist()
        # Explanations of the features named, when no declared preference is among them.
        texts = self._texts
        out = []
        for j, score in zip(order.tolist(), picked, strict=True):
            named = _strongest(ptr[j], ptr[j + 1], cols, vals, weights)
            text = None if declared else texts.get(named)
            if text is None:
                text = _explain([self.features[f] for f in named], declared)
                if not declared and len(texts) < MAX_TEXTS:
                    texts[named] = text
            out.append(_new(ScoredItem, (self.items[j], score, self.name, text)))
        return out


_new = tuple.__new__


def _strongest(
    start: int, end: int, cols: list[int], vals: list[float], weights: list[float]
) -> tuple[int, ...]:
    """An item's (row `start:end` of the vectors) two features that share most with the taste,
    those sharing anything, strongest first (ties: feature order). Items have a feature or
    two as a rule: those are compared directly, longer rows sorted."""
    if end - start == 1:
        f = cols[start]
        return (f,) if vals[start] * weights[f] > 0 else ()
    if end - start == 2:
        f, g = cols[start], cols[start + 1]
        x, y = vals[start] * weights[f], vals[start + 1] * weights[g]
        if y > x:  # the sort is stable: on a tie the first feature stays first
            f, g, x, y = g, f, y, x
        if y > 0:
            return (f, g)
        return (f,) if x > 0 else ()
    feats = cols[start:end]
    shared = [v * weights[f] for f, v in zip(feats, vals[start:end], strict=True)]
    strongest = sorted(range(len(shared)), key=shared.__getitem__, reverse=True)[:2]
    return tuple(feats[f] for f in strongest if shared[f] > 0)


def _explain(features: list[str], declared: set[str]) -> str:
    words = [f.split(":", 1)[1].title() for f in features]
    if not words:
        return "Similar to what you like."
    what = " and ".join(words)
    if declared & set(features):
        return f"Matches your interest in {what}."
    return f"Like the {what} items you viewed."
