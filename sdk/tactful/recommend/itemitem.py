"""Item-item collaborative filtering on co-occurrence counts, with shrinkage and top-k neighbors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from tactful.recommend.types import CatalogItem, Interaction, MinimizedView, ScoredItem


class ItemItemRecommender:
    """Recommends items that co-occur with the user's history across contributors.

    State: C = XᵀX, the co-occurrence counts of the binary contributor x item matrix (the
    diagonal holds each item's contributor count). Similarity: C_ij / (sqrt(C_ii C_jj) + shrinkage),
    keeping each item's `neighbors` most similar items. `learn`/`forget` add/subtract one
    contributor's outer product xxᵀ, so the state equals a refit without that contributor.
    """

    name = "item_item"

    def __init__(self, neighbors: int = 50, shrinkage: float = 10.0) -> None:
        if neighbors < 1 or shrinkage < 0:
            raise ValueError("neighbors must be >= 1 and shrinkage >= 0")
        self.neighbors = neighbors
        self.shrinkage = shrinkage
        self.index: dict[str, int] = {}
        self.items: list[str] = []
        self.titles: dict[str, str] = {}
        self.cooc = sp.csr_matrix((0, 0), dtype=np.float64)
        self._sim: sp.csr_matrix | None = None

    def _indices(self, bundle: Sequence[Interaction], grow: bool) -> np.ndarray:
        ids = []
        for i in dict.fromkeys(x.item for x in bundle):
            if i not in self.index:
                if not grow:
                    continue
                self.index[i] = len(self.items)
                self.items.append(i)
            ids.append(self.index[i])
        return np.asarray(sorted(ids), dtype=np.int64)

    def _resize(self) -> None:
        n = len(self.items)
        if self.cooc.shape[0] < n:
            self.cooc.resize((n, n))

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        """Build the co-occurrence counts from scratch."""
        self.index, self.items = {}, []
        self.titles = {c.item_id: c.title for c in catalog if c.title}
        for c in catalog:
            if c.item_id not in self.index:
                self.index[c.item_id] = len(self.items)
                self.items.append(c.item_id)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for r, bundle in enumerate(bundles):
            idx = self._indices(bundle, grow=True)
            rows.append(np.full(idx.size, r, dtype=np.int64))
            cols.append(idx)
        n = len(self.items)
        if rows:
            data = np.ones(sum(r.size for r in rows))
            x = sp.csr_matrix(
                (data, (np.concatenate(rows), np.concatenate(cols))), shape=(len(bundles), n)
            )
            self.cooc = (x.T @ x).tocsr()
        else:
            self.cooc = sp.csr_matrix((n, n), dtype=np.float64)
        self._sim = None

    def _outer(self, idx: np.ndarray) -> sp.csr_matrix:
        n = len(self.items)
        r = np.repeat(idx, idx.size)
        c = np.tile(idx, idx.size)
        return sp.csr_matrix((np.ones(r.size), (r, c)), shape=(n, n))

    def learn(self, bundle: Sequence[Interaction]) -> None:
        """Add one contributor: C += xxᵀ."""
        idx = self._indices(bundle, grow=True)
        self._resize()
        if idx.size:
            self.cooc = (self.cooc + self._outer(idx)).tocsr()
            self._sim = None

    def forget(self, bundle: Sequence[Interaction]) -> None:
        """Remove one earlier contributor: C -= xxᵀ (exact)."""
        idx = self._indices(bundle, grow=False)
        if idx.size:
            self.cooc = (self.cooc - self._outer(idx)).tocsr()
            self.cooc.eliminate_zeros()
            self._sim = None

    def similarity(self) -> sp.csr_matrix:
        """The pruned item-item similarity matrix (cached until the counts change)."""
        if self._sim is None:
            c = self.cooc.tocoo()
            diag = self.cooc.diagonal()
            keep = c.row != c.col
            r, col, v = c.row[keep], c.col[keep], c.data[keep]
            s = v / (np.sqrt(diag[r] * diag[col]) + self.shrinkage)
            sim = sp.csr_matrix((s, (r, col)), shape=self.cooc.shape)
            self._sim = _top_per_row(sim, self.neighbors)
        return self._sim

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        """Items most similar to the view's history; [] without a known history item."""
        hist = [self.index[i.item] for i in view.history if i.item in self.index]
        if k <= 0 or not hist:
            return []
        sim = self.similarity()
        rows = sim[np.unique(hist)]
        scores = np.asarray(rows.sum(axis=0)).ravel()
        for item in exclude:
            j = self.index.get(item)
            if j is not None:
                scores[j] = 0.0
        candidates = np.flatnonzero(scores > 0)
        if candidates.size == 0:
            return []
        order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
        hist_rows = np.unique(hist)
        out = []
        for j in order:
            contrib = np.asarray(sim[hist_rows, j].todense()).ravel()
            because = self.items[hist_rows[int(np.argmax(contrib))]]
            title = self.titles.get(because, because)
            out.append(
                ScoredItem(
                    self.items[j], float(scores[j]), self.name, f"because you viewed {title}"
                )
            )
        return out


def _top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    m = m.tocsr()
    m.sort_indices()
    indptr, data = m.indptr, m.data
    keep = np.ones(data.size, dtype=bool)
    for r in range(m.shape[0]):
        lo, hi = indptr[r], indptr[r + 1]
        if hi - lo > k:
            row = data[lo:hi]
            drop = np.argpartition(-row, k)[k:]
            keep[lo + drop] = False
    coo = m.tocoo()  # same order as the CSR data
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
