"""How the discovery level shapes a personalized list (pure functions, no store).

Until a diversity re-ranker exists in tactful.recommend, discovery widens the candidate pool:
the recommender is asked for `pool_size(k, level)` items, and `discover` keeps the best
round(k * (1 - level)) of them and fills the rest from the far end of the pool, so a higher
level brings in items less similar to the user's history. At level 0 the list is the plain
top k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
WIDEN = 3  # at level 1 the pool is k * (1 + WIDEN) items


def pool_size(k: int, level: float) -> int:
    """How many candidates to ask the recommender for at discovery `level` (0..1)."""
    return k + math.ceil(k * WIDEN * level)


def discover(pool: Sequence[T], k: int, level: float) -> list[T]:
    """Pick k items from a best-first pool: the head by taste, the rest from the pool's tail."""
    if len(pool) <= k:
        return list(pool)
    head = round(k * (1.0 - level))
    tail = k - head
    return list(pool[:head]) + (list(pool[len(pool) - tail :]) if tail else [])
