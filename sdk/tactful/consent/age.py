"""Age of digital consent (GDPR Art. 8): the per-country table and the facts the gate needs.

The user's age comes from a declared profile field (`birth_year` by default, a
user.demographic category) and the country from the subject's jurisdiction, else from the
`country` profile field. The gate reads these through `AgeRules` even when the decision later
forbids a recommender to read demographic data: age is a fact about the lawfulness of the
processing, not an input to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from tactful.errors import PolicyError
from tactful.store import Connection, Profiles, SubjectRef, now

AGE_FILE = "age_of_consent.yaml"


class AgeTable(BaseModel):
    """age_of_consent.yaml: the default age, per-country ages, and where age is read from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: int = Field(default=16, ge=13, le=18)
    countries: dict[str, int] = {}
    birth_year_field: str = "birth_year"
    country_field: str = "country"
    assume_minor_when_unknown: bool = False

    @classmethod
    def load(cls, directory: Path) -> AgeTable:
        """Read `directory`/age_of_consent.yaml (absent = 16 everywhere); PolicyError if wrong."""
        path = directory / AGE_FILE
        if not path.is_file():
            return cls()
        try:
            table = cls.model_validate(yaml.safe_load(path.read_bytes()) or {})
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML ({exc})") from None
        except PydanticValidationError as exc:
            raise PolicyError(f"{path}: {describe(exc)}") from None
        for code, age in table.countries.items():
            if len(code) != 2 or not code.isupper() or not 13 <= age <= 18:
                raise PolicyError(
                    f"{path}: countries.{code}: use ISO 3166-1 alpha-2 codes and ages 13..18"
                )
        return table

    def age_of_consent(self, country: str | None) -> int:
        """The age of digital consent in `country` (the default when unknown)."""
        if country is None:
            return self.default
        return self.countries.get(country.upper(), self.default)


@dataclass(frozen=True, slots=True)
class AgeFacts:
    """What the gate knows about the user's age: no birth year leaves this object."""

    age_of_consent: int
    age_known: bool
    minor: bool  # possibly below the age of consent in their country


def is_minor(birth_year: int, age_of_consent: int, year: int) -> bool:
    """True if someone born in `birth_year` may be below `age_of_consent` during `year`.

    Only the year is known, so the lower bound is used: a user born in 2010 counts as 15 for
    all of 2026, and reaches 16 in 2027. Erring this way protects children (Art. 8).
    """
    return year - birth_year - 1 < age_of_consent


class AgeRules:
    """Reads the age facts of one subject from its profile and jurisdiction."""

    def __init__(self, table: AgeTable, profiles: Profiles) -> None:
        self.table = table
        self._profiles = profiles
        fields = profiles.schema.fields
        names = [n for n in (table.birth_year_field, table.country_field) if n in fields]
        self._names = frozenset(names)
        self._categories = frozenset(fields[n].category for n in names)

    def facts(self, conn: Connection, subject: SubjectRef) -> AgeFacts:
        """The subject's age facts now (one decryption of at most two profile fields)."""
        values = (
            {
                k: v
                for k, v in self._profiles.get(conn, subject, categories=self._categories).items()
                if k in self._names
            }
            if self._categories
            else {}
        )
        country = subject.jurisdiction or _str(values.get(self.table.country_field))
        age = self.table.age_of_consent(country)
        birth_year = values.get(self.table.birth_year_field)
        if not isinstance(birth_year, int) or isinstance(birth_year, bool):
            return AgeFacts(age, False, self.table.assume_minor_when_unknown)
        return AgeFacts(age, True, is_minor(birth_year, age, now().year))

    def reads(self, names: Iterable[str]) -> bool:
        """Whether writing these profile fields can change someone's age facts."""
        return not self._names.isdisjoint(names)

    def possible_minors(self, conn: Connection, subjects: Sequence[SubjectRef]) -> set[int]:
        """Ids of those subjects who may be below the age of consent, judged as `facts` does.

        Unless the table assumes minors when the age is unknown, only subjects with a stored
        birth year can be minors, so only their fields are read and decrypted.
        """
        candidates: Sequence[SubjectRef] = subjects
        if not self.table.assume_minor_when_unknown:
            if self.table.birth_year_field not in self._names:
                return set()
            holders = self._profiles.holders(
                conn, self.table.birth_year_field, [s.id for s in subjects]
            )
            candidates = [s for s in subjects if s.id in holders]
        return {s.id for s in candidates if self.facts(conn, s).minor}


def describe(exc: PydanticValidationError) -> str:
    """The first problem of a pydantic error as 'at KEY: MESSAGE' (for PolicyError messages)."""
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"at {key}: {first['msg']}"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
