"""The segments.yaml format: segments as rules over profile fields, settings and behavior.

Validated with pydantic against the rest of the pack (fields.yaml, purposes.yaml and the
Settings model, passed as validation context), so every error names the file, the line and
the key. A segment declares the data categories it needs; the loader checks that they are
exactly what its conditions read and that its purposes declare them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tactful.store import ProfileSchema, category_allowed

Scalar = str | int | float | bool
OPERATORS = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "contains", "present")
KINDS = ("field", "setting", "behavior", "all", "any", "not")
SEGMENT_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


@dataclass(frozen=True, slots=True)
class PackContext:
    """What segments are checked against: the pack's fields, purposes and the settings.

    `settings` maps each setting name to "bool", "number" or "list" (tactful.settings).
    `purposes` maps each purpose id to (profiling, declared data categories).
    """

    schema: ProfileSchema
    settings: Mapping[str, str]
    purposes: Mapping[str, tuple[bool, tuple[str, ...]]]


def _err(message: str) -> PydanticCustomError:
    # No context: the message is used as written (values never go through a template).
    return PydanticCustomError("segment", message)


def _pack(info: ValidationInfo) -> PackContext | None:
    ctx = info.context
    found = ctx.get("pack") if isinstance(ctx, dict) else None
    return found if isinstance(found, PackContext) else None


class Behavior(BaseModel):
    """Counts the user's events (of some kinds, items of a catalog category, in a window)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kinds: tuple[str, ...] | None = Field(default=None, min_length=1)
    item_category: str | None = Field(default=None, min_length=1)
    within_days: int | None = Field(default=None, ge=1, le=3650)
    count: Literal["items", "events"] = "items"
    at_least: int = Field(default=1, ge=0)
    at_most: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _range(self) -> Behavior:
        if self.at_most is not None and self.at_most < self.at_least:
            raise _err(f"at_most ({self.at_most}) is below at_least ({self.at_least})")
        return self


class Condition(BaseModel):
    """One condition: `field`, `setting` or `behavior`, or `all`/`any`/`not` of conditions.

    A field or setting condition compares with one or more operators (all must hold):
    eq, ne, in, not_in, lt, le, gt, ge, contains (list fields), present (true/false).
    A user without the field never satisfies it (except `present: false`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    field: str | None = None
    setting: str | None = None
    behavior: Behavior | None = None
    all_: tuple[Condition, ...] | None = Field(default=None, alias="all", min_length=1)
    any_: tuple[Condition, ...] | None = Field(default=None, alias="any", min_length=1)
    not_: Condition | None = Field(default=None, alias="not")
    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)
    not_in: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    contains: Scalar | None = None
    present: bool | None = None

    def kind(self) -> str:
        """Which of field, setting, behavior, all, any, not this condition is."""
        given = [k for k, v in zip(KINDS, self._parts(), strict=True) if v is not None]
        return given[0]

    def operators(self) -> dict[str, object]:
        """The comparison operators given, by their YAML name."""
        values = {
            "eq": self.eq,
            "ne": self.ne,
            "in": self.in_,
            "not_in": self.not_in,
            "lt": self.lt,
            "le": self.le,
            "gt": self.gt,
            "ge": self.ge,
            "contains": self.contains,
            "present": self.present,
        }
        return {k: v for k, v in values.items() if v is not None}

    def _parts(self) -> tuple[object, ...]:
        return (self.field, self.setting, self.behavior, self.all_, self.any_, self.not_)

    @field_validator("field")
    @classmethod
    def _declared_field(cls, value: str | None, info: ValidationInfo) -> str | None:
        pack = _pack(info)
        if pack is not None and value is not None and value not in pack.schema.fields:
            known = ", ".join(sorted(pack.schema.fields)) or "none"
            raise _err(f"field {value!r} is not declared in fields.yaml (declared: {known})")
        return value

    @field_validator("setting")
    @classmethod
    def _known_setting(cls, value: str | None, info: ValidationInfo) -> str | None:
        pack = _pack(info)
        if pack is not None and value is not None and value not in pack.settings:
            known = ", ".join(sorted(pack.settings))
            raise _err(f"setting {value!r} is not a tactful setting (settings: {known})")
        return value

    @field_validator("eq", "ne", "in_", "not_in", "lt", "le", "gt", "ge", "contains")
    @classmethod
    def _operand_fits(cls, value: object, info: ValidationInfo) -> object:
        # Operators come after field/setting in the model, so those are in info.data.
        pack = _pack(info)
        if pack is None or value is None:
            return value
        op = (info.field_name or "").rstrip("_")
        field, setting = info.data.get("field"), info.data.get("setting")
        if isinstance(field, str) and field in pack.schema.fields:
            kind, name = "field", field
            ftype = {"int": "number", "float": "number", "list[str]": "list"}.get(
                pack.schema.fields[field].type, pack.schema.fields[field].type
            )
        elif isinstance(setting, str) and setting in pack.settings:
            kind, name, ftype = "setting", setting, pack.settings[setting]
        else:
            return value  # no field or setting (the shape check reports it), or an unknown one
        _check_operand(kind, name, ftype, op, value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        given = [k for k, v in zip(KINDS, self._parts(), strict=True) if v is not None]
        if len(given) != 1:
            raise _err(
                "a condition needs exactly one of field, setting, behavior, all, any, not "
                f"(found: {', '.join(given) or 'none'})"
            )
        ops = self.operators()
        if given[0] in ("field", "setting") and not ops:
            raise _err(f"a {given[0]} condition needs an operator: one of {', '.join(OPERATORS)}")
        if given[0] not in ("field", "setting") and ops:
            raise _err(
                f"operators ({', '.join(ops)}) belong to a field or setting condition, "
                f"not to {given[0]}"
            )
        return self


def _check_operand(kind: str, name: str, ftype: str, op: str, value: object) -> None:
    """An operator must fit the type; YAML's bare NO/yes/on must not pass as text."""
    if op in ("lt", "le", "gt", "ge"):
        if ftype != "number":
            raise _err(f"{kind} {name!r} is {ftype}: {op} compares numbers only")
        return
    if op == "contains" and ftype != "list":
        raise _err(
            f"{kind} {name!r} is {ftype}: contains applies to list fields only (use eq or in)"
        )
    element = {"list": "str", "number": "number"}.get(ftype, ftype)
    for v in value if isinstance(value, tuple) else (value,):
        if not _fits(v, element):
            hint = (
                "; quote it (YAML reads bare NO, yes, on, off as booleans)"
                if isinstance(v, bool) and element == "str"
                else ""
            )
            raise _err(
                f"{kind} {name!r} holds {element} values, but {op} compares with {v!r}{hint}"
            )


def _fits(value: object, element: str) -> bool:
    if element == "str":
        return isinstance(value, str)
    if element == "bool":
        return isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def reads_of(condition: Condition, schema: ProfileSchema) -> frozenset[str]:
    """The exact data categories a condition reads (settings read none)."""
    kind = condition.kind()
    if kind == "field":
        return frozenset({schema.category(condition.field or "")})
    if kind == "behavior":
        return frozenset({schema.event_category})
    if kind == "setting":
        return frozenset()
    children = condition.all_ or condition.any_ or ((condition.not_,) if condition.not_ else ())
    return frozenset().union(*(reads_of(c, schema) for c in children))


class Segment(BaseModel):
    """One segment: an id, what it means, the purposes it serves, its rule and its needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=SEGMENT_ID)
    description: str = ""
    purposes: tuple[str, ...] = Field(min_length=1)
    when: Condition
    # Required, so that every segment states what it reads; [] for a settings-only rule.
    needs: tuple[str, ...]

    @field_validator("purposes")
    @classmethod
    def _profiling_purposes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        pack = _pack(info)
        if pack is None:
            return value
        for pid in value:
            if pid not in pack.purposes:
                known = ", ".join(pack.purposes)
                raise _err(f"purpose {pid!r} is not declared in purposes.yaml (declared: {known})")
            if not pack.purposes[pid][0]:
                raise _err(
                    f"purpose {pid!r} is not a profiling purpose: placing people in segments "
                    "evaluates personal aspects (profiling, GDPR Art. 4(4)), so a segment "
                    "serves only purposes declared profiling: true"
                )
        return value

    @field_validator("needs")
    @classmethod
    def _needs_match_reads(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        pack = _pack(info)
        when = info.data.get("when")
        if pack is None or not isinstance(when, Condition):
            return value  # `when` itself failed; its own error is reported
        declared = frozenset(value)
        reads = reads_of(when, pack.schema)
        for category in sorted(reads):
            if not category_allowed(category, declared):
                raise _err(
                    f"the rule reads data category {category!r}, which needs does not declare "
                    f"(needs: {', '.join(value)}); add it to needs"
                )
        for need in value:
            if not any(category_allowed(r, frozenset({need})) for r in reads):
                raise _err(
                    f"needs declares {need!r}, but no condition of the rule reads it; remove it"
                )
        for pid in info.data.get("purposes") or ():
            allowed = frozenset(pack.purposes[pid][1])
            for category in sorted(reads):
                if not category_allowed(category, allowed):
                    names = ", ".join(sorted(allowed)) or "none"
                    raise _err(
                        f"purpose {pid!r} does not declare data category {category!r} "
                        f"(it declares: {names}); the segment could never be evaluated"
                    )
        return value


class SegmentFile(BaseModel):
    """segments.yaml: the list of segments (optional in a pack; none when absent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    segments: tuple[Segment, ...] = ()

    @field_validator("segments")
    @classmethod
    def _unique(cls, value: tuple[Segment, ...]) -> tuple[Segment, ...]:
        seen: set[str] = set()
        for s in value:
            if s.id in seen:
                raise _err(f"segment id {s.id!r} is used twice")
            seen.add(s.id)
        return value
