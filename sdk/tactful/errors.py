"""The exception hierarchy: every error tactful raises on purpose is a TactfulError.

Each message says what was wrong and what to do. Messages never contain personal data
(user ids, profile values, event items) nor key material.
"""

from __future__ import annotations


class TactfulError(Exception):
    """Root of every error tactful raises on purpose."""

    exit_code: int = 1


class ConfigurationError(TactfulError):
    """The store, the key file or an option is set up wrongly."""


class ValidationError(TactfulError, ValueError):
    """An input was rejected; nothing was written."""


class PolicyError(TactfulError):
    """A policy or purpose file could not be loaded or is invalid."""


class ConsentRequired(TactfulError):
    """The operation needs a consent the user has not given."""

    def __init__(self, message: str, *, purpose: str) -> None:
        super().__init__(message)
        self.purpose = purpose


class SubjectNotFound(TactfulError, LookupError):
    """No data is held for this user (never recorded, or erased)."""


class SubjectErased(TactfulError):
    """The user was erased; their data can no longer be read."""


class IntegrityError(TactfulError):
    """A ciphertext or the audit chain does not verify."""

    exit_code = 3


class KeyUnavailable(TactfulError):
    """A key needed to read or write data is missing or unreadable."""

    exit_code = 3


class BudgetExhausted(TactfulError):
    """A differentially private release would overspend its privacy budget."""

    def __init__(self, message: str, *, dataset: str, remaining: float) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.remaining = remaining
