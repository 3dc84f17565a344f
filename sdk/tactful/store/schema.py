"""The profile schema: which fields a profile may hold, their data category and type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tactful.errors import ValidationError

FieldType = Literal["str", "int", "float", "bool", "list[str]"]
MAX_TEXT = 4096
MAX_LIST = 256


class FieldSpec(BaseModel):
    """A declared profile field: its data category (taxonomy), type and retention."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str = Field(pattern=r"^user(\.[a-z0-9_]+)+$")
    type: FieldType = "str"
    retention_days: int | None = Field(default=None, gt=0)
    description: str = ""


class ProfileSchema(BaseModel):
    """All declared profile fields and the data category of behavioral events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: dict[str, FieldSpec]
    event_category: str = Field(
        default="user.behavior.interaction", pattern=r"^user(\.[a-z0-9_]+)+$"
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
