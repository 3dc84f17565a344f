"""Pure recommendation algorithms: they see MinimizedViews and interactions, never the store."""

from tactful.recommend.content import ContentRecommender
from tactful.recommend.diversity import rerank
from tactful.recommend.hybrid import DEFAULT_WEIGHTS, HybridRecommender
from tactful.recommend.itemitem import ItemItemRecommender
from tactful.recommend.popularity import PopularityRecommender
from tactful.recommend.rules import Rule, apply_rules
from tactful.recommend.types import (
    CatalogItem,
    Interaction,
    MinimizedView,
    Recommender,
    ScoredItem,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "CatalogItem",
    "ContentRecommender",
    "HybridRecommender",
    "Interaction",
    "ItemItemRecommender",
    "MinimizedView",
    "PopularityRecommender",
    "Recommender",
    "Rule",
    "ScoredItem",
    "apply_rules",
    "rerank",
]
