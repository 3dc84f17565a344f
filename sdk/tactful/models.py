"""What tf.recommend returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

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
