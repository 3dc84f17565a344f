"""The profile schema: which fields a profile may hold, their data category and type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from tactful.errors import ValidationError

FieldType = Literal["str", "int", "float", "bool", "list[str]"]
MAX_TEXT = 4096
MAX_LIST = 256


class FieldSpec(BaseModel):
    """A declared profile field: its data category (taxonomy), type, retention, searchability.

    `searchable` adds a blind index (keyed HMAC) for equality lookups; only str, int and bool
    fields can be searchable. `retention_days` overrides the retention of the field's category.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str = Field(pattern=r"^user(\.[a-z0-9_]+)+$")
    type: FieldType = "str"
    retention_days: int | None = Field(default=None, gt=0)
    searchable: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _searchable_types(self) -> FieldSpec:
        if self.searchable and self.type not in ("str", "int", "bool"):
            raise ValueError(f"a searchable field must be str, int or bool, not {self.type}")
        return self


class ProfileSchema(BaseModel):
    """All declared profile fields and the data category of behavioral events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: dict[str, FieldSpec]
    event_category: str = Field(
        default="user.behavior.interaction", pattern=r"^user(\.[a-z0-9_]+)+$"
    )
    retention: dict[Annotated[str, Field(pattern=r"^user(\.[a-z0-9_]+)*$")], PositiveInt] = {}

    def retention_days(self, category: str, field: str | None = None) -> int | None:
        """Days data of `category` (or of profile field `field`) is kept; None = no limit.

        A field's own `retention_days` wins; otherwise the most specific category entry of
        `retention` that equals or contains `category`.
        """
        if field is not None and field in self.fields:
            own = self.fields[field].retention_days
            if own is not None:
                return own
        best: tuple[int, int] | None = None
        for prefix, days in self.retention.items():
            matches = category == prefix or category.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), days)
        return None if best is None else best[1]

    def check_names(self, names: Sequence[str]) -> None:
        """Reject field names that are not declared, naming them."""
        if isinstance(names, str):
            raise ValidationError("fields must be a list of field names, not one string")
        unknown = [n for n in names if n not in self.fields]
        if unknown:
            declared = ", ".join(sorted(self.fields)) or "none"
            raise ValidationError(
                f"profile field {unknown[0]!r} is not declared in the policy pack's "
                f"fields.yaml (declared: {declared})"
            )

    def check(self, values: Mapping[str, object]) -> None:
        """Reject unknown fields and wrong types, naming the field (never echoing the value)."""
        if not values:
            raise ValidationError("no profile fields given; pass a dict of field name to value")
        for name, value in values.items():
            spec = self.fields.get(name)
            if spec is None:
                declared = ", ".join(sorted(self.fields)) or "none"
                raise ValidationError(
                    f"profile field {name!r} is not declared in the policy pack's fields.yaml "
                    f"(declared: {declared}); declare it with its data category first"
                )
            if value is not None and not _has_type(value, spec.type):
                raise ValidationError(
                    f"profile field {name!r} must be of type {spec.type}, "
                    f"got {type(value).__name__}"
                )

    def category(self, name: str) -> str:
        """The data category of a declared field."""
        return self.fields[name].category


def _has_type(value: object, kind: FieldType) -> bool:
    if kind == "str":
        return isinstance(value, str) and len(value) <= MAX_TEXT
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return (
        isinstance(value, list)
        and len(value) <= MAX_LIST
        and all(isinstance(v, str) and len(v) <= MAX_TEXT for v in value)
    )


def category_allowed(category: str, allowed: frozenset[str]) -> bool:
    """True if `category` equals or falls under one of the allowed categories."""
    return any(category == a or category.startswith(a + ".") for a in allowed)
