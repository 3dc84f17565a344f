"""How the discovery level sizes the candidate pool (pure function, no store).

The gate's caller asks the recommender for `pool_size(k, level)` candidates and hands them,
with the level, to the diversity re-ranker `tactful.recommend.rerank` (MMR with an
exploration slot): a wider pool at a higher level gives the re-ranker items further from the
user's history to choose from. At level 0 the pool is exactly k.
"""

from __future__ import annotations

import math

WIDEN = 3  # at level 1 the pool is k * (1 + WIDEN) items


def pool_size(k: int, level: float) -> int:
    """How many candidates to ask the recommender for at discovery `level` (0..1)."""
    return k + math.ceil(k * WIDEN * level)
