"""Content-based: TF-IDF over item categories, tags and attributes, matched to the user's taste."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from tactful.recommend.types import CatalogItem, Interaction, MinimizedView, ScoredItem

# Declared-preference fields read from MinimizedView.fields (when the policy allowed them).
PREFERENCE_FIELDS = ("favorite_genres", "genres", "favorite_categories", "interests")


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

    def learn(self, bundle: Sequence[Interaction]) -> None:
        """Nothing to add: the model holds no contributor's data."""

    def forget(self, bundle: Sequence[Interaction]) -> None:
        """Nothing to remove: the model holds no contributor's data."""

    def taste(self, view: MinimizedView) -> np.ndarray:
        """The user's taste vector over `features` (zero when nothing is known)."""
        taste = np.zeros(len(self.features))
        n = len(view.history)
        rows, weights = [], []
        for pos, event in enumerate(view.history):
            j = self.index.get(event.item)
            if j is not None:
                rows.append(j)
                half = self.history_half_life
                weights.append(1.0 if half is None else 0.5 ** ((n - 1 - pos) / half))
        if rows:
            taste += np.asarray(self.vectors[rows].T @ np.asarray(weights)).ravel()
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
        order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
        # The CSR arrays are read directly: slicing a scipy row per item costs ~100x more.
        ptr, cols, vals = self.vectors.indptr, self.vectors.indices, self.vectors.data
        out = []
        for j in order:
            feats = cols[ptr[j] : ptr[j + 1]]
            shared = vals[ptr[j] : ptr[j + 1]] * taste[feats]
            strongest = np.argsort(-shared, kind="stable")[:2]
            names = [self.features[int(feats[f])] for f in strongest if shared[f] > 0]
            out.append(
                ScoredItem(self.items[j], float(scores[j]), self.name, _explain(names, declared))
            )
        return out


def _explain(features: list[str], declared: set[str]) -> str:
    words = [f.split(":", 1)[1].title() for f in features]
    if not words:
        return "Similar to what you like."
    what = " and ".join(words)
    if declared & set(features):
        return f"Matches your interest in {what}."
    return f"Like the {what} items you viewed."
