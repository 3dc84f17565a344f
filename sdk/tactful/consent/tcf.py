"""A decoder for the core segment of an IAB TCF v2.2 TC string.

Our own small decoder rather than a dependency: the Python packages on PyPI (iab-tcf, last
released 2022, and its fork) predate TCF v2.2 and are not maintained. The bit layout follows
the IAB Tech Lab "Consent string and vendor list formats v2" specification; the core segment
is the first dot-separated segment, base64url without padding. Every malformed input raises
ValidationError (never IndexError, binascii.Error, ...), which a hypothesis test checks.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from tactful.errors import ValidationError

MAX_LENGTH = 16384
V22_POLICY_VERSION = 4
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
# Since TCF v2.2, legitimate interest may not be the basis for purposes 3-6 (profiles for
# ads and content); such bits are ignored rather than trusted.
NO_LI_PURPOSES = frozenset({3, 4, 5, 6})


@dataclass(frozen=True, slots=True)
class TCString:
    """The decoded core segment of a TC string (ids are 1-based, as in the specification)."""

    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: frozenset[int]
    vendor_legitimate_interests: frozenset[int]


class _Bits:
    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._size = len(data) * 8
        self.pos = 0

    def take(self, n: int, what: str) -> int:
        if self.pos + n > self._size:
            raise ValidationError(
                f"TC string is truncated: it ends inside the {what} field; pass the whole string "
                "the CMP produced"
            )
        shift = self._size - self.pos - n
        self.pos += n
        return (self._value >> shift) & ((1 << n) - 1)

    def flag(self, what: str) -> bool:
        return self.take(1, what) == 1

    def id_set(self, n: int, what: str) -> frozenset[int]:
        bits = format(self.take(n, what), f"0{n}b") if n else ""
        return frozenset(i + 1 for i, bit in enumerate(bits) if bit == "1")

    def letters(self, what: str) -> str:
        out = ""
        for _ in range(2):
            code = self.take(6, what)
            if code > 25:
                raise ValidationError(f"TC string has an invalid {what} (letter code {code})")
            out += chr(ord("A") + code)
        return out

    def moment(self, what: str) -> datetime:
        return datetime.fromtimestamp(self.take(36, what) / 10, UTC)

    def vendors(self, what: str) -> frozenset[int]:
        max_id = self.take(16, f"{what} max vendor id")
        if not self.flag(f"{what} encoding"):
            return self.id_set(max_id, f"{what} bit field")
        out: set[int] = set()
        for _ in range(self.take(12, f"{what} range count")):
            is_range = self.flag(f"{what} range entry")
            start = self.take(16, f"{what} vendor id")
            end = self.take(16, f"{what} vendor id") if is_range else start
            if not 1 <= start <= end <= max_id:
                raise ValidationError(
                    f"TC string has an invalid {what} range ({start}-{end}, max {max_id})"
                )
            out.update(range(start, end + 1))
        return frozenset(out)


def decode_tc_string(text: object, *, min_policy_version: int = V22_POLICY_VERSION) -> TCString:
    """Decode the core segment; ValidationError for malformed, v1 or pre-v2.2 strings.

    `min_policy_version` is 4 (TCF v2.2) by default; lower it only to inspect old strings.
    """
    if not isinstance(text, str) or not text:
        raise ValidationError("a TC string must be a non-empty str (the CMP's tcString)")
    if len(text) > MAX_LENGTH:
        raise ValidationError(f"TC string is longer than {MAX_LENGTH} characters; refusing it")
    core = text.strip().split(".")[0]
    if not _B64URL.match(core):
        raise ValidationError(
            "TC string is not base64url (A-Z a-z 0-9 - _); pass the string exactly as the CMP "
            "returned it"
        )
    core = core.rstrip("=")
    if len(core) % 4 == 1:
        raise ValidationError("TC string has an impossible base64url length; it is truncated")
    data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    bits = _Bits(data)
    version = bits.take(6, "version")
    if version != 2:
        raise ValidationError(
            f"TC string has version {version}; only TCF v2 strings (version 2) are supported"
        )
    created = bits.moment("created")
    last_updated = bits.moment("last updated")
    cmp_id = bits.take(12, "CMP id")
    cmp_version = bits.take(12, "CMP version")
    consent_screen = bits.take(6, "consent screen")
    language = bits.letters("consent language")
    vendor_list_version = bits.take(12, "vendor list version")
    policy_version = bits.take(6, "policy version")
    if policy_version < min_policy_version:
        raise ValidationError(
            f"TC string has TCF policy version {policy_version}; TCF v2.2 strings have policy "
            f"version {V22_POLICY_VERSION} or later. Ask the CMP for a v2.2 string (older "
            "strings lack the v2.2 purpose rules and are no longer valid)"
        )
    service_specific = bits.flag("is service specific")
    non_standard = bits.flag("use non-standard texts")
    special = bits.id_set(12, "special feature opt-ins")
    consents = bits.id_set(24, "purpose consents")
    li = bits.id_set(24, "purpose legitimate interests")
    one_treatment = bits.flag("purpose one treatment")
    publisher_cc = bits.letters("publisher country code")
    vendor_consents = bits.vendors("vendor consents")
    vendor_li = bits.vendors("vendor legitimate interests")
    return TCString(
        version=version,
        created=created,
        last_updated=last_updated,
        cmp_id=cmp_id,
        cmp_version=cmp_version,
        consent_screen=consent_screen,
        consent_language=language,
        vendor_list_version=vendor_list_version,
        policy_version=policy_version,
        is_service_specific=service_specific,
        use_non_standard_texts=non_standard,
        special_feature_opt_ins=special,
        purpose_consents=consents,
        purpose_legitimate_interests=li - NO_LI_PURPOSES
        if policy_version >= V22_POLICY_VERSION
        else li,
        purpose_one_treatment=one_treatment,
        publisher_cc=publisher_cc,
        vendor_consents=vendor_consents,
        vendor_legitimate_interests=vendor_li,
    )
