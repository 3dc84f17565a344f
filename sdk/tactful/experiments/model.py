"""What an experiment is (its declaration) and what its results say (DP releases)."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,47}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_VARIANTS = 16
MAX_METRICS = 16


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Variant(_Frozen):
    """One arm of an experiment: its name, its share of enrolled users, what it changes.

    `blend` overrides the hybrid recommender's blend weights by recommender name
    ("item_item", "content", "popularity", or a registered recommender) for the users in this
    variant when `tf.recommend(..., experiment=ID)` serves them; empty means the app's blend.
    """

    name: str
    weight: float = 1.0
    blend: dict[str, float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                "a variant name is 1-32 letters, digits, '_', '.' or '-' (e.g. 'control')"
            )
        return v

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError("a variant weight must be a finite number > 0")
        return v

    @field_validator("blend")
    @classmethod
    def _blend(cls, v: dict[str, float]) -> dict[str, float]:
        if any(not (math.isfinite(w) and w >= 0) for w in v.values()):
            raise ValueError("blend weights must be finite numbers >= 0")
        return v


class Experiment(_Frozen):
    """A declared experiment.

    `purpose` is the declared purpose it serves (e.g. "improve.models"): only users whose
    consent covers it are enrolled; everyone else gets the `control` variant's experience and
    is never recorded nor counted. `metrics` are the event kinds that count as a conversion.
    Its results are charged to the privacy budget of dataset `experiment.<id>`.
    """

    id: str
    purpose: str
    variants: tuple[Variant, ...]
    metrics: tuple[str, ...]
    control: str = ""
    description: str = ""
    status: Literal["running", "stopped"] = "running"
    created_at: datetime | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(
                "an experiment id is 1-48 lowercase letters, digits, '_', '.' or '-', starting "
                "with a letter or digit (e.g. 'homepage-blend')"
            )
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or len(v) > MAX_METRICS:
            raise ValueError(f"metrics must name 1-{MAX_METRICS} event kinds (e.g. ['click'])")
        if any(not isinstance(k, str) or not k or len(k) > 32 for k in v):
            raise ValueError("a metric event kind is a non-empty string of at most 32 characters")
        return tuple(dict.fromkeys(v))

    @model_validator(mode="after")
    def _arms(self) -> Experiment:
        names = [v.name for v in self.variants]
        if not 2 <= len(names) <= MAX_VARIANTS:
            raise ValueError(f"an experiment needs 2-{MAX_VARIANTS} variants")
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be distinct, got {names}")
        if self.control and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants {names}")
        if not self.control:
            object.__setattr__(self, "control", names[0])
        if len(self.description) > 500:
            raise ValueError("description must be at most 500 characters")
        return self

    @property
    def dataset(self) -> str:
        """The privacy-budget dataset its results are charged to."""
        return f"experiment.{self.id}"

    def variant(self, name: str) -> Variant:
        """The variant of this name (KeyError if none)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


class Assignment(_Frozen):
    """Which experience a user gets in an experiment.

    `enrolled` is False for users whose consent does not cover the experiment's purpose (or
    who are restricted, objected, or unknown): they get the control and are never counted.
    """

    experiment: str
    variant: str
    enrolled: bool


class RateEstimate(_Frozen):
    """A rate with its 95% interval (sampling and DP noise together, normal approximation)."""

    value: float
    low: float
    high: float


class CountEstimate(_Frozen):
    """A DP count with the 95% interval of its noise (covers the true count)."""

    value: float
    low: float
    high: float


class VariantResult(_Frozen):
    """One variant's released numbers: exposed users, converted users, conversion rate."""

    variant: str
    exposed: CountEstimate
    converted: CountEstimate
    rate: RateEstimate


class Difference(_Frozen):
    """A variant's conversion rate minus the control's, with its 95% interval.

    `significant` is True when the interval excludes 0 (a two-sided test at the 5% level).
    """

    variant: str
    versus: str
    value: float
    low: float
    high: float
    significant: bool


class ExperimentResults(_Frozen):
    """A differentially private release of an experiment's results.

    Counts are of users (each counts once, in their variant): exposed, and converted (did at
    least one metric event after their first exposure). Only users whose consent covers the
    purpose at release time are counted. `epsilon` was charged to `dataset`.
    """

    experiment: str
    release_id: str
    released_at: datetime
    epsilon: float
    dataset: str
    confidence: float = 0.95
    variants: tuple[VariantResult, ...]
    differences: tuple[Difference, ...]
