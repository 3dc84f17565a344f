"""The compiled segments answer like a direct reading of their rules (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tactful.policy import load_pack
from tactful.recommend import Interaction, MinimizedView
from tactful.segments import CompiledSegments
from tactful.settings import Settings
from tactful.store import category_allowed
from tests.conftest import POLICIES

PACK = load_pack(POLICIES)
COMPILED = CompiledSegments(PACK.segments, PACK.schema)
NOW = 1_800_000_000.0
DAY = 86_400.0
SPORTS = frozenset({"s0", "s1", "s2", "s3", "s4"})
ITEMS = sorted(SPORTS | {"d0", "d1", "d2"})
CATEGORIES = ["user.behavior", "user.location.country", "user.preference"]

events = st.lists(
    st.builds(
        Interaction,
        item=st.sampled_from(ITEMS),
        kind=st.sampled_from(["view", "purchase"]),
        ts=st.floats(min_value=NOW - 60 * DAY, max_value=NOW),
    ),
    max_size=12,
)


def _regular(history: list[Interaction]) -> bool:
    recent = {e.item for e in history if e.kind == "view" and e.ts >= NOW - 30 * DAY}
    return len(recent & SPORTS) >= 3


@settings(max_examples=300, deadline=None)
@given(
    history=events,
    country=st.none() | st.sampled_from(["DE", "AT", "FR", "NO"]),
    discovery=st.floats(min_value=0, max_value=1),
    allowed=st.sets(st.sampled_from(CATEGORIES)),
)
def test_evaluation_matches_a_direct_reading_of_the_default_rules(
    history: list[Interaction], country: str | None, discovery: float, allowed: set[str]
) -> None:
    fields = {"country": country} if country is not None else {}
    view = MinimizedView(fields=fields, history=tuple(history))
    result = COMPILED.evaluate(
        "personalization",
        frozenset(allowed),
        view,
        Settings(discovery=discovery).model_dump(),
        lambda c: SPORTS if c == "sports" else frozenset(),
        now=NOW,
    )
    behavior, location = "user.behavior" in allowed, "user.location.country" in allowed
    expected = []
    if behavior and _regular(history):
        expected.append("sports-regulars")
    if behavior and location and country in ("DE", "AT") and _regular(history):
        expected.append("dach-sports-fans")
    if discovery >= 0.6:
        expected.append("explorers")
    assert list(result.matched) == expected
    skipped = {s.segment: s.withheld for s in result.skipped}
    assert ("sports-regulars" in skipped) == (not behavior)
    assert ("dach-sports-fans" in skipped) == (not (behavior and location))
    assert "explorers" not in skipped, "a settings-only segment needs no data category"
    for withheld in skipped.values():
        assert withheld and not any(category_allowed(w, frozenset(allowed)) for w in withheld)
    assert not set(result.matched) & set(skipped)


def test_purposes_without_segments_evaluate_nothing() -> None:
    view = MinimizedView(fields={"country": "DE"})
    result = COMPILED.evaluate(
        "marketing.targeted", frozenset(CATEGORIES), view, {}, lambda _c: SPORTS
    )
    assert result.matched == () and result.skipped == ()
