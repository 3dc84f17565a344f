"""Pure recommendation algorithms: they see MinimizedViews and interactions, never the store."""

from tactful.recommend.itemitem import ItemItemRecommender
from tactful.recommend.popularity import PopularityRecommender
from tactful.recommend.types import (
    CatalogItem,
    Interaction,
    MinimizedView,
    Recommender,
    ScoredItem,
)

__all__ = [
    "CatalogItem",
    "Interaction",
    "ItemItemRecommender",
    "MinimizedView",
    "PopularityRecommender",
    "Recommender",
    "ScoredItem",
]
