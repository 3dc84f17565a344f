"""Segments: rules over profile fields, settings and behavior, declared in segments.yaml.

The policy pack validates and compiles them once at load (`tactful.segments.model`,
`tactful.segments.compiled`); the gate evaluates them on each personalized decision's
minimized view, skipping a segment whose data the decision withholds; memberships are
inferred personal data, stored encrypted per subject (`tactful.segments.membership`),
exported and erased with the subject, and counted only through differential privacy.
"""

from __future__ import annotations

from collections.abc import Mapping

from tactful.segments.compiled import CompiledSegments, Evaluation, Skipped, ViewLike
from tactful.segments.membership import Memberships
from tactful.segments.model import PackContext, Segment, SegmentFile
from tactful.settings import Settings


def setting_kinds() -> Mapping[str, str]:
    """Each user setting a segment may test, as "bool", "number" or "list"."""
    out: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, bool):
            out[name] = "bool"
        elif isinstance(default, int | float):
            out[name] = "number"
        else:
            out[name] = "list"
    return out


__all__ = [
    "CompiledSegments",
    "Evaluation",
    "Memberships",
    "PackContext",
    "Segment",
    "SegmentFile",
    "Skipped",
    "ViewLike",
    "setting_kinds",
]
