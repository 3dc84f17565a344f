"""What tf.recommend returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

Mode = Literal["personalized", "non_personalized", "denied"]


class RecommendedItem(BaseModel):
    """One recommended item, with the signal behind it and a reason a user can read."""

    model_config = ConfigDict(frozen=True)

    item: str
    score: float
    signal: str
    explanation: str


class Recommendations(BaseModel):
    """The result of one gated call: items, the mode, the decision id and why."""

    model_config = ConfigDict(frozen=True)

    items: tuple[RecommendedItem, ...]
    mode: Mode
    decision_id: str
    purpose: str
    explanation: str
    reasons: tuple[str, ...]
    categories_used: tuple[str, ...]

    @property
    def item_ids(self) -> list[str]:
        """The recommended item ids, best first."""
        return [i.item for i in self.items]


# Validated answer items by content. A RecommendedItem is frozen, so answers that repeat an
# item (the same user asking again before anything changed, the same popular list for
# everyone without a profile) share one instance instead of validating it again. Bounded:
# cleared when full. It holds items and their reasons, never who they were for.
ITEM_MEMO = 8192
_validated: dict[tuple[str, float, str, str], RecommendedItem] = {}
_ITEMS = TypeAdapter(list[RecommendedItem])


def recommended_items(
    scored: Sequence[tuple[str, float, str, str]],
) -> tuple[RecommendedItem, ...]:
    """The answer's items (item, score, signal, explanation), validated: pydantic's
    ValidationError for an item of the wrong types. Items validated before are reused."""
    try:
        found = [_validated.get(s) for s in scored]
    except TypeError:  # an unhashable value: validation says which item and field
        return tuple(_ITEMS.validate_python([_item_input(s) for s in scored]))
    missing = [n for n, item in enumerate(found) if item is None]
    if missing:
        made = _ITEMS.validate_python([_item_input(scored[n]) for n in missing])
        if len(_validated) + len(made) > ITEM_MEMO:
            _validated.clear()
        for n, item in zip(missing, made, strict=True):
            found[n] = _validated[scored[n]] = item
    return tuple(found)  # type: ignore[arg-type]


def _item_input(s: tuple[str, float, str, str]) -> dict[str, object]:
    return {"item": s[0], "score": s[1], "signal": s[2], "explanation": s[3]}
