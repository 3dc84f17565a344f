"""The TC string decoder: known vectors, clear errors, and no crash on arbitrary input."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tactful import ValidationError
from tactful.consent import SignalMap, decode_tc_string
from tactful.policy import load_pack
from tests.conftest import POLICIES
from tests.consent.tcf_encoder import encode

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "tcf.json").read_text())
SETS = {
    "special_feature_opt_ins",
    "purpose_consents",
    "purpose_legitimate_interests",
    "vendor_consents",
    "vendor_legitimate_interests",
}


def _decoded(tc: Any, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        value = getattr(tc, k)
        if k in SETS:
            value = sorted(value)
        elif k in ("created", "last_updated"):
            value = value.isoformat()
        out[k] = value
    return out


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_v22_vectors_decode_to_their_fields(vector: dict[str, Any]) -> None:
    tc = decode_tc_string(vector["tc_string"])
    expected = vector["expected"]
    assert _decoded(tc, list(expected)) == expected


# The vector whose LI bits on purposes 3-6 are dropped on decode cannot be re-encoded from
# its decoded view; every other one must be exactly what the test encoder writes.
ENCODABLE = [v for v in VECTORS["valid"] if not v["name"].endswith("ignored")]


@pytest.mark.parametrize("vector", ENCODABLE, ids=lambda v: v["name"])
def test_vectors_are_what_the_test_encoder_writes(vector: dict[str, Any]) -> None:
    fields = vector["expected"]
    assert encode(fields, vendor_ranges=vector.get("vendor_ranges", False)) == vector["tc_string"]


@pytest.mark.parametrize("vector", VECTORS["published_pre_v22"], ids=lambda v: v["name"])
def test_published_strings_decode_as_published_when_old_policies_are_allowed(
    vector: dict[str, Any],
) -> None:
    tc = decode_tc_string(vector["tc_string"], min_policy_version=0)
    expected = vector["expected"]
    assert _decoded(tc, list(expected)) == expected


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_malformed_and_pre_v22_strings_get_a_clear_error(vector: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=vector["error"]):
        decode_tc_string(vector["tc_string"])


def test_mapping_to_our_purposes_follows_signals_yaml() -> None:
    pack = load_pack(POLICIES)
    mapping = SignalMap.load(pack.directory, pack.purposes)
    for vector in VECTORS["valid"]:
        assert mapping.tcf_states(decode_tc_string(vector["tc_string"])) == vector["our_purposes"]


def test_oversized_string_is_refused_before_decoding() -> None:
    with pytest.raises(ValidationError, match="longer than"):
        decode_tc_string("C" * 20000)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200).map(lambda b: b.hex())))
def test_decoder_never_crashes_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ValidationError):
        decode_tc_string(text)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.integers(min_value=0, max_value=5))
def test_decoder_never_crashes_on_arbitrary_base64url_bytes(data: bytes, cut: int) -> None:
    import base64

    # Force a v2 header half of the time, so the fuzzing reaches the deeper fields.
    if data and cut % 2:
        data = bytes([0b00001000 | (data[0] & 0b11)]) + data[1:]
    text = base64.urlsafe_b64encode(data).decode().rstrip("=")[: len(data) * 2 - cut]
    try:
        tc = decode_tc_string(text, min_policy_version=0)
    except ValidationError:
        return
    assert tc.version == 2
    assert all(1 <= i <= 24 for i in tc.purpose_consents)
