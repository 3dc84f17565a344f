"""The base of the facades on Tactful (tf.profiles, tf.consent, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tactful.client import Tactful


class Part:
    def __init__(self, tf: Tactful) -> None:
        self._tf = tf
        self._store = tf._store
