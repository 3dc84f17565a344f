"""Exact unlearning: after random learn/forget sequences the state equals a refit without the
forgotten contributors (to 1e-9), for popularity (with and without decay) and item-item, and
the hybrid built on them answers like a refit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tactful.recommend import (
    CatalogItem,
    ContentRecommender,
    HybridRecommender,
    Interaction,
    ItemItemRecommender,
    MinimizedView,
    PopularityRecommender,
)
from tactful.recommend import itemitem as itemitem_module

ITEMS = [f"i{n}" for n in range(8)]
NOW = 1_000_000.0

bundle_st = st.lists(
    st.tuples(st.sampled_from(ITEMS), st.floats(min_value=0, max_value=NOW)),
    min_size=1,
    max_size=6,
).map(lambda evs: [Interaction(item=i, ts=t) for i, t in evs])

# Each step: learn a new bundle, or forget the n-th still-learned one.
steps_st = st.lists(st.one_of(bundle_st, st.integers(min_value=0, max_value=50)), max_size=25)


def _replay(model: object, steps: list[object]) -> list[list[Interaction]]:
    """Apply the steps; return the bundles still learned (in learn order)."""
    kept: list[list[Interaction]] = []
    for step in steps:
        if isinstance(step, list):
            model.learn(step)  # type: ignore[attr-defined]
            kept.append(step)
        elif kept:
            model.forget(kept.pop(step % len(kept)))  # type: ignore[attr-defined]
    return kept


def _pairs(model: ItemItemRecommender) -> dict[tuple[str, str], float]:
    c = model.counts().tocoo()
    return {
        (model.items[r], model.items[k]): float(v)
        for r, k, v in zip(c.row, c.col, c.data, strict=True)
        if v != 0
    }


@settings(max_examples=60, deadline=None)
@given(steps=steps_st, half_life=st.one_of(st.none(), st.floats(min_value=0.5, max_value=30)))
def test_popularity_forget_equals_refit_without_the_forgotten(
    steps: list[object], half_life: float | None
) -> None:
    model = PopularityRecommender(half_life_days=half_life, now=NOW)
    model.fit([], [])
    kept = _replay(model, steps)
    refit = PopularityRecommender(half_life_days=half_life, now=NOW)
    refit.fit(kept, [])
    assert model.counts.keys() == refit.counts.keys()
    for item, count in refit.counts.items():
        assert abs(model.counts[item] - count) <= 1e-9
    view = MinimizedView()
    assert [s.item for s in model.recommend(view, 8, frozenset())] == [
        s.item for s in refit.recommend(view, 8, frozenset())
    ]


@settings(max_examples=60, deadline=None)
@given(steps=steps_st, dense=st.booleans())
def test_item_item_forget_equals_refit_without_the_forgotten(
    steps: list[object], dense: bool
) -> None:
    catalog = [CatalogItem(i) for i in ITEMS[:4]]
    limit = itemitem_module.DENSE_MAX
    itemitem_module.DENSE_MAX = limit if dense else 2  # the sparse path for small catalogs
    try:
        model = ItemItemRecommender(neighbors=3, shrinkage=1.0)
        model.fit([], catalog)
        kept = _replay(model, steps)
        refit = ItemItemRecommender(neighbors=3, shrinkage=1.0)
        refit.fit(kept, catalog)
        ours, theirs = _pairs(model), _pairs(refit)
        assert ours.keys() == theirs.keys()
        for pair, value in theirs.items():
            assert abs(ours[pair] - value) <= 1e-9
        view = MinimizedView(history=(Interaction("i0"), Interaction("i1")))
        got = model.recommend(view, 5, frozenset())
        want = refit.recommend(view, 5, frozenset())
        assert [s.item for s in got] == [s.item for s in want]
        assert np.allclose([s.score for s in got], [s.score for s in want], atol=1e-9)
    finally:
        itemitem_module.DENSE_MAX = limit


def test_content_model_holds_no_contributor_so_forget_changes_nothing() -> None:
    catalog = [CatalogItem("a", categories=("x",)), CatalogItem("b", categories=("y",))]
    model = ContentRecommender()
    model.fit([[Interaction("a")]], catalog)
    before = model.vectors.toarray().copy()
    model.learn([Interaction("b")])
    model.forget([Interaction("a")])
    assert np.array_equal(model.vectors.toarray(), before)


@settings(max_examples=40, deadline=None)
@given(steps=steps_st)
def test_hybrid_forget_answers_like_a_refit_without_the_forgotten(steps: list[object]) -> None:
    catalog = [CatalogItem(i, categories=(f"g{n % 3}",)) for n, i in enumerate(ITEMS)]

    def hybrid() -> HybridRecommender:
        return HybridRecommender(
            [
                ItemItemRecommender(neighbors=3, shrinkage=1.0),
                ContentRecommender(),
                PopularityRecommender(half_life_days=5.0, now=NOW),
            ]
        )

    model = hybrid()
    model.fit([], catalog)
    kept = _replay(model, steps)
    refit = hybrid()
    refit.fit(kept, catalog)
    for view in [
        MinimizedView(history=(Interaction("i0"), Interaction("i5"))),
        MinimizedView(fields={"favorite_genres": ["g1"]}),
        MinimizedView(),
    ]:
        got = model.recommend(view, 6, frozenset({"i5"}))
        want = refit.recommend(view, 6, frozenset({"i5"}))
        assert [(s.item, s.signal, s.explanation) for s in got] == [
            (s.item, s.signal, s.explanation) for s in want
        ]
        assert np.allclose([s.score for s in got], [s.score for s in want], atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(steps=steps_st, dense=st.booleans())
def test_item_item_answers_like_a_refit_after_every_change_while_it_keeps_similarity_rows(
    steps: list[object], dense: bool
) -> None:
    """A change drops only the similarity rows it can move: the rows kept from earlier
    answers must still be a refit's."""
    catalog = [CatalogItem(i) for i in ITEMS[:5]]
    views = [
        MinimizedView(history=(Interaction("i0"), Interaction("i1"))),
        MinimizedView(history=(Interaction("i6"),)),
        MinimizedView(history=(Interaction("i3"), Interaction("i7"), Interaction("i2"))),
    ]
    limit, pending = itemitem_module.DENSE_MAX, itemitem_module.PENDING_MAX
    itemitem_module.DENSE_MAX = limit if dense else 2  # the sparse path for small catalogs
    itemitem_module.PENDING_MAX = 3  # the sparse path also adds what waits, now and then
    try:
        model = ItemItemRecommender(neighbors=2, shrinkage=1.0)
        model.fit([], catalog)
        kept: list[list[Interaction]] = []
        for step in steps:
            _replay_one(model, kept, step)
            refit = ItemItemRecommender(neighbors=2, shrinkage=1.0)
            refit.fit(kept, catalog)
            for view in views:
                got = model.recommend(view, 4, frozenset())
                want = refit.recommend(view, 4, frozenset())
                assert [(s.item, s.explanation) for s in got] == [
                    (s.item, s.explanation) for s in want
                ]
                assert np.allclose([s.score for s in got], [s.score for s in want], atol=1e-9)
    finally:
        itemitem_module.DENSE_MAX, itemitem_module.PENDING_MAX = limit, pending


def _replay_one(model: ItemItemRecommender, kept: list[list[Interaction]], step: object) -> None:
    if isinstance(step, list):
        model.learn(step)
        kept.append(step)
    elif kept:
        model.forget(kept.pop(int(step) % len(kept)))  # type: ignore[call-overload]


@settings(max_examples=60, deadline=None)
@given(steps=steps_st, neighbors=st.integers(min_value=1, max_value=9))
def test_sparse_and_dense_layouts_find_the_same_neighbors(
    steps: list[object], neighbors: int
) -> None:
    """The sparse layout computes similarities over each row's nonzero counts only; its
    neighbor sets (ties at the k-th included) and similarities are the dense layout's."""
    catalog = [CatalogItem(i) for i in ITEMS[:5]]
    models = []
    limit, pending = itemitem_module.DENSE_MAX, itemitem_module.PENDING_MAX
    try:
        for dense_max in (limit, 2):
            itemitem_module.DENSE_MAX, itemitem_module.PENDING_MAX = dense_max, 3
            model = ItemItemRecommender(neighbors=neighbors, shrinkage=0.5)
            model.fit([], catalog)
            _replay(model, steps)
            models.append(model)
    finally:
        itemitem_module.DENSE_MAX, itemitem_module.PENDING_MAX = limit, pending
    dense, sparse = models
    assert dense._dense is not None and sparse._dense is None
    assert dense.items == sparse.items
    rows = np.arange(len(dense.items), dtype=np.int64)
    for (di, ds), (si, ss) in zip(dense.neighbors_of(rows), sparse.neighbors_of(rows), strict=True):
        assert di.tolist() == si.tolist()
        assert ds.tolist() == ss.tolist()


# Each step: learn a new bundle, or replace the n-th learned one by itself plus more events
# (the catch-up's case), or by another bundle altogether.
relearn_steps_st = st.lists(
    st.one_of(
        bundle_st,
        st.tuples(st.integers(min_value=0, max_value=50), bundle_st, st.booleans()),
    ),
    max_size=20,
)


@settings(max_examples=80, deadline=None)
@given(steps=relearn_steps_st, dense=st.booleans(), read_through=st.sampled_from([2, 10**6]))
def test_item_item_relearn_equals_forget_then_learn(
    steps: list[object], dense: bool, read_through: int
) -> None:
    """Also with waiting changes merged into the rows a query reads, or added in first."""
    catalog = [CatalogItem(i) for i in ITEMS[:4]]
    view = MinimizedView(history=(Interaction("i0"), Interaction("i5")))
    limit, pending = itemitem_module.DENSE_MAX, itemitem_module.PENDING_MAX
    through = itemitem_module.READ_THROUGH
    itemitem_module.DENSE_MAX = limit if dense else 2
    itemitem_module.PENDING_MAX = 3
    itemitem_module.READ_THROUGH = read_through
    try:
        model = ItemItemRecommender(neighbors=2, shrinkage=1.0)
        model.fit([], catalog)
        kept: list[list[Interaction]] = []
        for step in steps:
            if isinstance(step, list):
                model.learn(step)
                kept.append(step)
                continue
            assert isinstance(step, tuple)
            n, more, grows = step
            if not kept:
                continue
            n %= len(kept)
            new = kept[n] + more if grows else more
            model.relearn(kept[n], new)
            kept[n] = new
            model.recommend(view, 3, frozenset())  # keeps similarity rows the next must drop
        refit = ItemItemRecommender(neighbors=2, shrinkage=1.0)
        refit.fit(kept, catalog)
        assert _pairs(model) == _pairs(refit)
        got, want = model.recommend(view, 5, frozenset()), refit.recommend(view, 5, frozenset())
        assert [(s.item, s.explanation) for s in got] == [(s.item, s.explanation) for s in want]
        assert np.allclose([s.score for s in got], [s.score for s in want], atol=1e-9)
    finally:
        itemitem_module.DENSE_MAX, itemitem_module.PENDING_MAX = limit, pending
        itemitem_module.READ_THROUGH = through
