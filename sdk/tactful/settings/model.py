"""The Settings model: what a user chose about how they are personalized."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Topic = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]


class Settings(BaseModel):
    """A user's choices about how they are personalized; the gate honors every one.

    personalization: False means the option not based on profiling (DSA Art. 38): the user
        sees the non-personalized list.
    discovery: 0 = only what is closest to your taste, 1 = show me new things (widens the
        candidate pool and drives the MMR re-ranker, `tactful.recommend.rerank`).
    excluded_topics: item categories never to recommend.
    use_behavior / use_profile / use_location: which of the user's data sources may be read
        for personalization (activity; declared profile fields; location fields).
    channel_recommendations / channel_email: per-channel switches; a call whose
        context["channel"] is switched off gets no recommendations (context channel "email"
        uses channel_email, every other channel channel_recommendations).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    personalization: bool = True
    discovery: float = Field(default=0.2, ge=0.0, le=1.0)
    excluded_topics: tuple[Topic, ...] = Field(default=(), max_length=256)
    use_behavior: bool = True
    use_profile: bool = True
    use_location: bool = True
    channel_recommendations: bool = True
    channel_email: bool = True
