"""Narrowing what a decision lets a recommender read: categories are dotted prefixes."""

from __future__ import annotations

from tactful.settings import Settings
from tactful.store import category_allowed

BEHAVIOR = "user.behavior"
LOCATION = "user.location"
SPECIAL = frozenset({"user.special"})


def narrow(read: frozenset[str], allowed: tuple[str, ...]) -> frozenset[str]:
    """The part of `read` that also falls under `allowed` (categories are dotted prefixes)."""
    allowed_set = frozenset(allowed)
    out: set[str] = set()
    for r in read:
        if category_allowed(r, allowed_set):
            out.add(r)
        else:
            out.update(a for a in allowed if category_allowed(a, frozenset({r})))
    return frozenset(out)


def settings_filter(read: frozenset[str], settings: Settings) -> frozenset[str]:
    """Drop the data sources the user switched off (behavior, profile, location)."""
    return frozenset(
        c
        for c in read
        if (settings.use_behavior or not category_allowed(c, frozenset({BEHAVIOR})))
        and (settings.use_profile or category_allowed(c, frozenset({BEHAVIOR})))
        and (settings.use_location or not category_allowed(c, frozenset({LOCATION})))
    )


def withhold(read: frozenset[str], withheld: frozenset[str]) -> frozenset[str]:
    """Drop the categories a rule withholds; a broader category that contains one goes too."""
    if not withheld:
        return read
    return frozenset(
        c
        for c in read
        if not category_allowed(c, withheld) and not any(w.startswith(c + ".") for w in withheld)
    )


def drop_special(read: frozenset[str]) -> frozenset[str]:
    """`read` without the special categories (user.special.*, GDPR Art. 9)."""
    return frozenset(c for c in read if not category_allowed(c, SPECIAL))
