"""`tactful demo`: a synthetic catalog and users, then every part of tactful end to end."""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.columns import Columns
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from tactful import Recommendations, SubjectNotFound, Tactful

GENRES = (
    "action",
    "comedy",
    "drama",
    "documentary",
    "horror",
    "kids",
    "romance",
    "scifi",
    "thriller",
    "sports",
)
ADJECTIVES = (
    "Silent",
    "Golden",
    "Last",
    "Hidden",
    "Broken",
    "Midnight",
    "Electric",
    "Lost",
    "Crimson",
    "Quiet",
    "Wild",
    "Frozen",
)
NOUNS = (
    "Harbor",
    "Signal",
    "Garden",
    "Empire",
    "River",
    "Machine",
    "Summer",
    "Station",
    "Orchard",
    "Frontier",
    "Lighthouse",
    "Circuit",
)
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "AT", "IE", "PL")
AGES = ("18-24", "25-34", "35-44", "45-54", "55+")


def make_catalog(rng: random.Random, n: int = 240) -> list[dict[str, Any]]:
    """n items, each in one or two genres, with generated titles."""
    items: list[dict[str, Any]] = []
    for i in range(n):
        genres = rng.sample(GENRES, k=rng.choice((1, 1, 2)))
        title = f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
        items.append(
            {
                "item_id": f"item-{i:04d}",
                "title": f"{title} ({i})",
                "categories": genres,
                "attributes": {"minutes": rng.choice((22, 45, 95, 110, 130))},
            }
        )
    return items


def seed_users(
    tf: Tactful, rng: random.Random, catalog: list[dict[str, Any]], users: int
) -> dict[str, int]:
    """Users with genre tastes, events, profiles and mixed consents; returns counts by kind."""
    by_genre: dict[str, list[str]] = {g: [] for g in GENRES}
    for entry in catalog:
        for g in entry["categories"]:
            by_genre[g].append(str(entry["item_id"]))
    ids = [str(i["item_id"]) for i in catalog]
    weights = [1.0 / (r + 5) for r in range(len(ids))]  # a long tail of popularity
    start = datetime.now(UTC) - timedelta(days=60)
    counts = {"users": 0, "events": 0, "consented": 0, "opted_out": 0}
    for u in range(users):
        user = f"user-{u:04d}"
        taste = rng.sample(GENRES, k=2)
        events = []
        for _ in range(rng.randint(8, 30)):
            if rng.random() < 0.75:
                item = rng.choice(by_genre[rng.choice(taste)])
            else:
                item = rng.choices(ids, weights=weights)[0]
            when = start + timedelta(minutes=rng.randint(0, 60 * 24 * 59))
            events.append((item, rng.choice(("view", "view", "like")), when))
        counts["events"] += tf.events.record_many(user, events)
        tf.profiles.put(
            user,
            {
                "age_range": rng.choice(AGES),
                "country": rng.choice(COUNTRIES),
                "favorite_genres": taste,
            },
        )
        if rng.random() < 0.65:
            tf.consent.grant(
                user,
                ["personalization"],
                notice_id="privacy-notice",
                notice_version="2026-10",
                method="ui",
            )
            counts["consented"] += 1
            if rng.random() < 0.1:
                tf.settings.update(user, personalization=False)
                counts["opted_out"] += 1
        if rng.random() < 0.4:
            tf.consent.grant(
                user,
                ["analytics.aggregate"],
                notice_id="privacy-notice",
                notice_version="2026-10",
                method="ui",
            )
        counts["users"] += 1
    return counts


def _rec_table(title: str, recs: Recommendations, titles: dict[str, str]) -> Table:
    table = Table(title=f"{title}: {recs.mode}", caption=recs.explanation, caption_justify="left")
    table.add_column("#", justify="right")
    table.add_column("item", no_wrap=True)
    table.add_column("why")
    for n, item in enumerate(recs.items, 1):
        table.add_row(str(n), titles.get(item.item, item.item), item.explanation)
    return table


def run_demo(
    console: Console,
    *,
    home: str | None,
    db_url: str | None,
    users: int,
    seed: int,
    policies: str | None,
) -> None:
    """Seed a fresh store and show consent-aware recommendations, export, erasure, audit, report."""
    started = time.perf_counter()
    workdir = Path(home) if home else Path(tempfile.mkdtemp(prefix="tactful-demo-"))
    rng = random.Random(seed)
    console.print(Panel.fit(f"tactful demo · store in {workdir}", style="bold"))
    with Tactful.open(db_url=db_url, home=workdir, policies=policies) as tf:
        catalog = make_catalog(rng)
        tf.catalog.upsert(catalog)
        titles = {str(i["item_id"]): str(i["title"]) for i in catalog}
        counts = seed_users(tf, rng, catalog, users)
        console.print(
            f"seeded {len(catalog)} items, {counts['users']} users, {counts['events']} encrypted "
            f"events; {counts['consented']} users consented to personalization "
            f"({counts['opted_out']} of them then switched it off)"
        )
        consenting = next(
            u
            for u in (f"user-{i:04d}" for i in range(users))
            if tf.consent.status(u)["personalization"].given and tf.settings.get(u).personalization
        )
        refusing = next(
            u
            for u in (f"user-{i:04d}" for i in range(users))
            if not tf.consent.status(u)["personalization"].given
        )
        personal = tf.recommend(consenting, k=5)
        anonymous = tf.recommend(refusing, k=5)
        console.print(
            Columns(
                [
                    _rec_table(f"{consenting} (consented)", personal, titles),
                    _rec_table(f"{refusing} (no consent)", anonymous, titles),
                ],
                padding=(1, 4),
            )
        )

        tf.settings.update(consenting, excluded_topics=["horror"], discovery=0.5)
        tf.consent.withdraw(consenting, ["personalization"])
        after = tf.recommend(consenting, k=5)
        console.print(
            f"{consenting} withdraws consent → next call is [bold]{after.mode}[/bold]: "
            f"{after.explanation}"
        )

        export = tf.rights.export(consenting)
        export_path = workdir / "export.json"
        export_path.write_text(json.dumps(export, indent=2), encoding="utf-8")
        console.print(
            f"export of {consenting}: {len(export['profile'])} profile fields, "
            f"{len(export['events'])} events, {len(export['consent_history'])} consent records, "
            f"{len(export['decisions'])} decisions → {export_path}"
        )
        receipt = tf.rights.erase(consenting)
        console.print(
            f"erased {consenting}: {receipt.events} events, {receipt.profile_fields} fields, "
            f"data key shredded, models unlearned (request {receipt.request_id[:8]})"
        )
        try:
            tf.rights.export(consenting)
        except SubjectNotFound as exc:
            console.print(f"export after erasure → [yellow]{exc}[/yellow]")

        verdict = tf.audit.verify()
        style = "green" if verdict.ok else "red"
        console.print(f"[{style}]{verdict.summary()}[/{style}]")
        report = tf.report()
        report_path = workdir / "report.md"
        report_path.write_text(report.to_markdown(), encoding="utf-8")
        decisions = report.data["decisions"]["by_purpose"].get("personalization", {})
        console.print(f"compliance report → {report_path} (decisions: {decisions})")
    console.print(f"[bold]done in {time.perf_counter() - started:.1f} s[/bold]")
