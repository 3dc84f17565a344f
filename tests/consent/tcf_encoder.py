"""A TC string encoder for tests: writes the core segment field by field, per the IAB spec.

Kept independent of the decoder (a bit list, not an integer), so a vector built here checks
the decoder's offsets rather than repeating them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from typing import Any


def _int(bits: list[int], value: int, width: int) -> None:
    assert 0 <= value < 1 << width
    bits.extend((value >> (width - 1 - i)) & 1 for i in range(width))


def _set(bits: list[int], ids: Iterable[int], width: int) -> None:
    wanted = set(ids)
    bits.extend(1 if i + 1 in wanted else 0 for i in range(width))


def _letters(bits: list[int], text: str) -> None:
    for ch in text:
        _int(bits, ord(ch) - ord("A"), 6)


def _vendors(bits: list[int], ids: Iterable[int], ranges: bool) -> None:
    wanted = sorted(set(ids))
    max_id = wanted[-1] if wanted else 0
    _int(bits, max_id, 16)
    if not ranges:
        _int(bits, 0, 1)
        _set(bits, wanted, max_id)
        return
    _int(bits, 1, 1)
    runs: list[tuple[int, int]] = []
    for v in wanted:
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    _int(bits, len(runs), 12)
    for start, end in runs:
        _int(bits, int(start != end), 1)
        _int(bits, start, 16)
        if start != end:
            _int(bits, end, 16)


def _deciseconds(moment: str) -> int:
    return round(datetime.fromisoformat(moment).timestamp() * 10)


def encode(f: dict[str, Any], *, vendor_ranges: bool = False) -> str:
    """The core segment (and nothing else) for the field values in `f`."""
    bits: list[int] = []
    _int(bits, f["version"], 6)
    _int(bits, _deciseconds(f["created"]), 36)
    _int(bits, _deciseconds(f["last_updated"]), 36)
    _int(bits, f["cmp_id"], 12)
    _int(bits, f["cmp_version"], 12)
    _int(bits, f["consent_screen"], 6)
    _letters(bits, f["consent_language"])
    _int(bits, f["vendor_list_version"], 12)
    _int(bits, f["policy_version"], 6)
    _int(bits, int(f["is_service_specific"]), 1)
    _int(bits, int(f["use_non_standard_texts"]), 1)
    _set(bits, f["special_feature_opt_ins"], 12)
    _set(bits, f["purpose_consents"], 24)
    _set(bits, f["purpose_legitimate_interests"], 24)
    _int(bits, int(f["purpose_one_treatment"]), 1)
    _letters(bits, f["publisher_cc"])
    _vendors(bits, f["vendor_consents"], vendor_ranges)
    _vendors(bits, f["vendor_legitimate_interests"], vendor_ranges)
    _int(bits, 0, 12)  # no publisher restrictions
    bits.extend([0] * (-len(bits) % 8))
    data = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
