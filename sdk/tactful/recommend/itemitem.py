"""Item-item collaborative filtering on co-occurrence counts, with shrinkage and top-k neighbors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from tactful.recommend.types import (
    CatalogItem,
    Interaction,
    MinimizedView,
    ScoredItem,
    best_first,
)

# Up to this many items the counts live in a dense float64 matrix (4096² is 128 MiB; ML-100K's
# 1682 items take 22 MiB): one contributor is then an O(m²) in-place update for m items.
DENSE_MAX = 4096
# Above it, the changes of learn/forget/relearn wait as entries that a query merges into the
# count rows it reads, and are added into the sparse matrix (O(its nonzeros)) once this many
# changes wait, or when a query would merge more than READ_THROUGH entries.
PENDING_MAX = 64
READ_THROUGH = 1_000_000
MAX_TEXTS = 65_536  # explanation texts kept per fit (one per item a user viewed)


class ItemItemRecommender:
    """Recommends items that co-occur with the user's history across contributors.

    State: C = XᵀX, the co-occurrence counts of the binary contributor x item matrix (the
    diagonal holds each item's contributor count). Similarity:
    C_ij / (sqrt(C_ii C_jj) + shrinkage), keeping each item's `neighbors` most similar items
    (and any tied with the last). `learn`/`forget` add/subtract one contributor's outer
    product xxᵀ in O(m²) for m items, so the state equals a refit without that contributor;
    similarity rows are computed lazily for the items a query needs, and a change drops only
    the rows it can move: those of the contributor's items and of the items co-occurring
    with them (no other C_ij or C_jj changed). With `history_half_life` (in events), a
    history item's vote halves for every that many later events, so recent taste weighs
    more.
    """

    name = "item_item"

    def __init__(
        self,
        neighbors: int = 50,
        shrinkage: float = 10.0,
        history_half_life: float | None = None,
    ) -> None:
        if neighbors < 1 or shrinkage < 0:
            raise ValueError("neighbors must be >= 1 and shrinkage >= 0")
        if history_half_life is not None and history_half_life <= 0:
            raise ValueError("history_half_life must be positive (or None for equal weights)")
        self.neighbors = neighbors
        self.shrinkage = shrinkage
        self.history_half_life = history_half_life
        self.index: dict[str, int] = {}
        self.items: list[str] = []
        self.titles: dict[str, str] = {}
        self._texts: dict[str, str] = {}  # "Because you viewed <title>." by viewed item, per fit
        self._dense: np.ndarray | None = np.zeros((0, 0))
        self._sparse = sp.csr_matrix((0, 0), dtype=np.float64)
        # Changes of C not yet added into the sparse matrix: (rows, cols, values) entries per
        # change, and their concatenation once asked for.
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._waiting: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._diag = np.zeros(0)  # C's diagonal, kept up to date in both layouts
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._changes = 0  # moved by every learn, forget and fit: rows made before are not kept

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

    def _grow(self) -> None:
        n = len(self.items)
        if self._diag.size < n:
            self._diag = np.concatenate([self._diag, np.zeros(n - self._diag.size)])
        if self._dense is not None:
            if n > DENSE_MAX:
                self._sparse = sp.csr_matrix(self._dense)
                self._sparse.resize((n, n))
                self._dense = None
            elif self._dense.shape[0] < n:
                grown = np.zeros((n, n))
                m = self._dense.shape[0]
                grown[:m, :m] = self._dense
                self._dense = grown
        elif self._sparse.shape[0] < n:
            self._flush()
            self._sparse.resize((n, n))

    def fit(self, bundles: Sequence[Sequence[Interaction]], catalog: Sequence[CatalogItem]) -> None:
        """Build the co-occurrence counts from scratch."""
        self.index, self.items, self._pending, self._rows = {}, [], [], {}
        self._waiting = None
        self._changes += 1
        self.titles = {c.item_id: c.title for c in catalog if c.title}
        self._texts = {}
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
        x = sp.csr_matrix(
            (
                np.ones(sum(r.size for r in rows)),
                (
                    np.concatenate(rows) if rows else np.zeros(0, np.int64),
                    np.concatenate(cols) if cols else np.zeros(0, np.int64),
                ),
            ),
            shape=(len(bundles), n),
        )
        cooc = (x.T @ x).tocsr()
        cooc.sort_indices()
        self._diag = np.asarray(cooc.diagonal(), dtype=np.float64)
        if n <= DENSE_MAX:
            self._dense, self._sparse = cooc.toarray(), sp.csr_matrix((0, 0))
        else:
            self._dense, self._sparse = None, cooc

    def _update(self, idx: np.ndarray, sign: float) -> None:
        self._add(idx, idx, sign)

    def _add(self, rows: np.ndarray, cols: np.ndarray, sign: float) -> None:
        """C[rows x cols] += sign (a block of C; callers keep C symmetric)."""
        self._changes += 1
        both = np.intersect1d(rows, cols, assume_unique=True)  # the diagonal entries moved
        self._drop_rows(rows, both)
        self._diag[both] += sign
        if self._dense is not None:
            self._dense[np.ix_(rows, cols)] += sign
        else:
            entries = rows.size * cols.size
            self._pending.append(
                (np.repeat(rows, cols.size), np.tile(cols, rows.size), np.full(entries, sign))
            )
            self._waiting = None
            if len(self._pending) > PENDING_MAX:
                self._flush()

    def _waiting_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every change not yet added into the sparse matrix, as (rows, cols, values)."""
        if self._waiting is None:
            parts = self._pending
            self._waiting = (
                np.concatenate([r for r, _, _ in parts]),
                np.concatenate([c for _, c, _ in parts]),
                np.concatenate([v for _, _, v in parts]),
            )
        return self._waiting

    def _drop_rows(self, rows: np.ndarray, diagonal: np.ndarray) -> None:
        """Forget the similarity rows a change of C on a block can move: the block's rows,
        and the rows of every item co-occurring with an item whose C_jj moved (`diagonal`:
        C_jj is in the denominators of j's similarities)."""
        cached = self._rows
        if not cached:
            return
        hit = np.zeros(len(self.items), dtype=bool)
        hit[rows] = True
        if diagonal.size:
            if self._dense is not None:
                hit |= self._dense[diagonal].any(axis=0)
            else:
                mine = np.zeros(len(self.items), dtype=bool)
                mine[diagonal] = True
                hit[self._sparse.indices[_entries(self._sparse.indptr, diagonal)[0]]] = True
                if self._pending:
                    waiting_rows, waiting_cols, _ = self._waiting_entries()
                    hit[waiting_cols[mine[waiting_rows]]] = True
        keys = np.fromiter(cached, dtype=np.int64, count=len(cached))
        for r in keys[hit[keys]].tolist():
            del cached[r]

    def _flush(self) -> None:
        if not self._pending:
            return
        n = self._sparse.shape[0]
        r, c, v = self._waiting_entries()
        delta = sp.csr_matrix((v, (r, c)), shape=(n, n))
        self._sparse = (self._sparse + delta).tocsr()
        self._sparse.eliminate_zeros()
        self._sparse.sort_indices()
        self._pending, self._waiting = [], None

    def learn(self, bundle: Sequence[Interaction]) -> None:
        """Add one contributor: C += xxᵀ."""
        idx = self._indices(bundle, grow=True)
        self._grow()
        if idx.size:
            self._update(idx, 1.0)

    def forget(self, bundle: Sequence[Interaction]) -> None:
        """Remove one earlier contributor: C -= xxᵀ (exact)."""
        idx = self._indices(bundle, grow=False)
        if idx.size:
            self._update(idx, -1.0)

    def relearn(self, old: Sequence[Interaction], new: Sequence[Interaction]) -> None:
        """Replace one contributor's learned bundle `old` by `new`: `forget(old)` then
        `learn(new)`, exactly. When `new` holds every item of `old` (events were added), only
        the pairs with an added item change: C += x_a x_newᵀ + x_old x_aᵀ for the added
        items a, O(|a| |new|) rather than O(|new|²) twice, and nothing changes when no item is
        new to the contributor."""
        was = self._indices(old, grow=False)
        now = self._indices(new, grow=True)
        self._grow()
        if np.setdiff1d(was, now, assume_unique=True).size:
            self.forget(old)
            self.learn(new)
            return
        added = np.setdiff1d(now, was, assume_unique=True)
        if added.size:
            self._add(added, now, 1.0)
            if was.size:
                self._add(was, added, 1.0)

    def counts(self) -> sp.csr_matrix:
        """The co-occurrence counts C (rows and columns in the order of `items`)."""
        if self._dense is not None:
            return sp.csr_matrix(self._dense)
        self._flush()
        return self._sparse.copy()

    def neighbors_of(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each item row, its top `neighbors` (indices, similarities), similarity > 0."""
        # Read into a dict of its own: another thread's learn or forget may drop rows from
        # the cache meanwhile, which must not fail this call; rows made while one ran are
        # not kept.
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        cached, changes = self._rows, self._changes
        for r in rows.tolist():
            row = cached.get(r)
            if row is not None:
                found[r] = row
        missing = np.asarray([r for r in rows.tolist() if r not in found], dtype=np.int64)
        if missing.size:
            k = min(self.neighbors, len(self.items))
            if self._dense is None:
                made = self._sparse_neighbors(missing, k)
            else:
                made = self._dense_neighbors(missing, k)
            found.update(made)
            if changes == self._changes:
                cached.update(made)
        return [found[r] for r in rows.tolist()]

    def _dense_neighbors(
        self, missing: np.ndarray, k: int
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        assert self._dense is not None
        made: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        diag = self._diag
        counts = np.asarray(self._dense[missing])
        denom = np.sqrt(diag[missing, None] * diag[None, :]) + self.shrinkage
        sims = np.divide(counts, denom, out=np.zeros_like(counts), where=denom > 0)
        sims[np.arange(missing.size), missing] = 0.0
        for n, r in enumerate(missing):
            row = sims[n]
            # Items tied with the k-th similarity are all kept: the neighbor set must not
            # depend on the order in which items were first learned.
            kth = -np.partition(-row, k - 1)[k - 1] if k < row.size else 0.0
            top = np.flatnonzero((row >= kth) & (row > 0))
            made[int(r)] = (top, row[top])
        return made

    def _sparse_neighbors(
        self, missing: np.ndarray, k: int
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        # The same similarities and neighbor sets as the dense rows, computed over each row's
        # nonzero counts only (a zero count is a zero similarity, never a neighbor): a row
        # costs its co-occurring items, not the catalog. The rows' entries are taken from the
        # matrix's arrays (column-sorted), with the waiting changes merged in.
        m = missing.size
        matrix = self._sparse
        take, lengths = _entries(matrix.indptr, missing)
        row_of = np.repeat(np.arange(m), lengths)
        cols, values = matrix.indices[take].astype(np.int64), matrix.data[take]
        if self._pending:
            place = np.full(len(self.items), -1, dtype=np.int64)  # item -> its row here
            place[missing] = np.arange(m)
            waiting_rows, waiting_cols, waiting_values = self._waiting_entries()
            at = place[waiting_rows]
            mine = at >= 0
            if np.count_nonzero(mine) > READ_THROUGH:
                # A change of thousands of items (a heavy contributor): adding the waiting
                # changes in once is cheaper than merging them.
                self._flush()
                return self._sparse_neighbors(missing, k)
            if mine.any():
                row_of = np.concatenate((row_of, at[mine]))
                cols = np.concatenate((cols, waiting_cols[mine]))
                values = np.concatenate((values, waiting_values[mine]))
                # By (row, column), stably: one integer key sorted, the order of
                # lexsort((cols, row_of)) at a third of its cost.
                order = np.argsort(row_of * len(self.items) + cols, kind="stable")
                row_of, cols, values = row_of[order], cols[order], values[order]
                first = np.ones(row_of.size, dtype=bool)
                first[1:] = (row_of[1:] != row_of[:-1]) | (cols[1:] != cols[:-1])
                heads = np.flatnonzero(first)
                values = np.add.reduceat(values, heads)
                row_of, cols = row_of[heads], cols[heads]
        starts = np.searchsorted(row_of, np.arange(m))
        # Every row at once: each entry's similarity, then each row's k-th largest from one
        # sort by (row, similarity descending), then the entries kept, split by row.
        owner = missing[row_of]
        diag = self._diag
        denom = np.sqrt(diag[owner] * diag[cols]) + self.shrinkage
        sims = np.divide(values, denom, out=np.zeros_like(values), where=denom > 0)
        sims[cols == owner] = 0.0
        positive = sims > 0
        kth = np.zeros(m)
        if k < len(self.items):
            # Items tied with the k-th similarity are all kept (as on the dense layout). The
            # k-th largest of each row that has k positive entries, by a partition of its
            # entries (a sort of every entry by row and similarity cost five times as much).
            enough = np.flatnonzero(np.bincount(row_of[positive], minlength=m) >= k)
            if enough.size:
                ends = np.append(starts[1:], row_of.size)
                for r in enough.tolist():
                    kth[r] = -np.partition(-sims[starts[r] : ends[r]], k - 1)[k - 1]
        keep = positive & (sims >= kth[row_of])
        kept_cols, kept_sims = cols[keep], sims[keep]
        edges = np.searchsorted(row_of[keep], np.arange(m + 1)).tolist()
        return {
            r: (kept_cols[edges[n] : edges[n + 1]], kept_sims[edges[n] : edges[n + 1]])
            for n, r in enumerate(missing.tolist())
        }

    def history_weights(self, history: Sequence[Interaction]) -> dict[int, float]:
        """Each known history item's vote: 1, or halved per `history_half_life` later events."""
        weights: dict[int, float] = {}
        n = len(history)
        for pos, event in enumerate(history):
            j = self.index.get(event.item)
            if j is None:
                continue
            w = 1.0
            if self.history_half_life is not None:
                w = 0.5 ** ((n - 1 - pos) / self.history_half_life)
            weights[j] = max(weights.get(j, 0.0), w)
        return weights

    def _votes(self, view: MinimizedView) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Every vote of the view's history, row after row in history order: (item, vote,
        history item voting). None without a known history item.

        A history item votes for each of its neighbors with its weight times their
        similarity; a row lists an item at most once.
        """
        weights = self.history_weights(view.history)
        if not weights:
            return None
        hist = list(weights)
        rows = self.neighbors_of(np.asarray(hist, dtype=np.int64))
        lens = [len(idx) for idx, _ in rows]
        items = np.concatenate([idx for idx, _ in rows])
        votes = np.repeat(np.asarray([weights[h] for h in hist]), lens) * np.concatenate(
            [sim for _, sim in rows]
        )
        return items, votes, np.repeat(np.asarray(hist, dtype=np.int64), lens)

    def scores(self, view: MinimizedView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores over `items` for the view, with each item's strongest history source and vote
        (the first history item, in order, whose vote is the largest; -1 and 0 for none)."""
        n = len(self.items)
        source = np.full(n, -1, dtype=np.int64)
        best = np.zeros(n)
        found = self._votes(view)
        if found is None:
            return np.zeros(n), source, best
        items, votes, owners = found
        voted, sources = _strongest(items, votes, owners, best)
        source[voted] = sources
        return _summed(items, votes, n), source, best

    def recommend(self, view: MinimizedView, k: int, exclude: frozenset[str]) -> list[ScoredItem]:
        """Items most similar to the view's history; [] without a known history item."""
        if k <= 0:
            return []
        found = self._votes(view)
        if found is None:
            return []
        items, votes, owners = found
        n = len(self.items)
        scores = _summed(items, votes, n)
        for item in exclude:
            j = self.index.get(item)
            if j is not None:
                scores[j] = 0.0
        candidates = np.flatnonzero(scores > 0)
        if candidates.size == 0:
            return []
        if candidates.size > k:
            # Keep every item tied with the k-th so that ties break by index, deterministically.
            kth = -np.partition(-scores[candidates], k - 1)[k - 1]
            candidates = candidates[scores[candidates] >= kth]
        # Ties break by item id (not by index, which depends on the order items were learned);
        # item ids are distinct, so the index after them is never compared.
        names = self.items
        listed = candidates.tolist()
        keys = best_first(scores[candidates].tolist())
        keyed = sorted(zip(keys, [names[j] for j in listed], listed, strict=True))
        ranked = [row[2] for row in keyed[:k]]
        # Each answer's reason, as `scores` gives it, found among the answers' votes only.
        chosen = np.zeros(n, dtype=bool)
        chosen[ranked] = True
        voted, sources = _strongest(items, votes, owners, np.zeros(n), chosen)
        source = dict(zip(voted.tolist(), sources.tolist(), strict=True))
        titles, texts = self.titles, self._texts
        out = []
        for j, score in zip(ranked, scores[ranked].tolist(), strict=True):
            because = names[source[j]]
            text = texts.get(because)
            if text is None:
                title = titles.get(because, because)
                text = f"Because you viewed {title}."
                if len(texts) < MAX_TEXTS:
                    texts[because] = text
            out.append(_new(ScoredItem, (names[j], score, self.name, text)))
        return out


_new = tuple.__new__


def _strongest(
    items: np.ndarray,
    votes: np.ndarray,
    owners: np.ndarray,
    best: np.ndarray,
    among: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each voted item's strongest source: the first voter (in the votes' order) whose vote
    is the item's largest, for the items `among` marks (all by default). Fills `best`
    (zeros, one per item) with each item's largest vote; returns (items, sources)."""
    np.maximum.at(best, items, votes)
    strongest = (votes == best[items]) & (votes > 0)
    if among is not None:
        strongest &= among[items]
    at = np.flatnonzero(strongest)
    voted, first = np.unique(items[at], return_index=True)
    return voted, owners[at[first]]


def _entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the entries of `rows` of a CSR matrix lie in its arrays, row after row, and each
    row's length: the rows' slices gathered at once (scipy's row indexing builds a matrix)."""
    lo = indptr[rows]
    lengths = indptr[rows + 1] - lo
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.repeat(lo - offsets, lengths) + np.arange(int(lengths.sum())), lengths


def _summed(items: np.ndarray, votes: np.ndarray, n: int) -> np.ndarray:
    """Each item's votes summed in the order given (that of adding row after row)."""
    return np.bincount(items, weights=votes, minlength=n).astype(np.float64, copy=False)
