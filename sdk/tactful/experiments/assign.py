"""Deterministic assignment: a keyed BLAKE2b hash of (experiment, pseudonym) picks the variant.

The key is derived from the store's pseudonym key (HKDF, label "experiments"), so every
process and channel of the same store assigns a user to the same variant, and nobody without
the key can predict or steer assignments. The input is the stored pseudonym, never the app's
user id. Per experiment, the keyed hash state is prepared once (key block and experiment id
absorbed) and copied per call; the 64-bit digest is compared with integer thresholds
proportional to the weights.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence

SPACE = 1 << 64
PERSON = b"tactful-exp/1"


def thresholds(weights: Sequence[float]) -> tuple[int, ...]:
    """Upper bounds in [0, 2**64) of each variant's bucket range, by cumulative weight."""
    total = float(sum(weights))
    acc = 0.0
    out: list[int] = []
    for w in weights[:-1]:
        acc += w
        out.append(min(SPACE, round(SPACE * acc / total)))
    return tuple(out)


class Assigner:
    """Maps pseudonyms to variant indexes for one experiment; cheap to call, safe to share."""

    __slots__ = ("_base", "_bounds", "names")

    def __init__(self, key: bytes, experiment: str, names: Sequence[str], weights: Sequence[float]):
        if len(names) != len(weights) or not names:
            raise ValueError("one weight per variant name is needed")
        base = hashlib.blake2b(key=key, digest_size=8, person=PERSON)
        # The id is length-prefixed so that (experiment, pseudonym) pairs never collide.
        raw = experiment.encode("utf-8")
        base.update(len(raw).to_bytes(2, "big") + raw)
        self._base = base
        self._bounds = thresholds(weights)
        self.names = tuple(names)

    def index(self, pseudonym: str) -> int:
        """The variant index of one pseudonym."""
        h = self._base.copy()
        h.update(pseudonym.encode())
        return bisect_right(self._bounds, int.from_bytes(h.digest(), "big"))

    def variant(self, pseudonym: str) -> str:
        """The variant name of one pseudonym."""
        return self.names[self.index(pseudonym)]
