"""MovieLens 100K, read from the recbole==1.2.1 wheel (downloaded once, never installed).

`pip download --no-deps recbole==1.2.1 -d ~/.cache/tactful/` fetches the wheel; the ratings
and item genres are read from it with zipfile. Tab-separated files with typed headers such as
`user_id:token`.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tactful.recommend import CatalogItem

CACHE = Path.home() / ".cache" / "tactful"
WHEEL = CACHE / "recbole-1.2.1-py3-none-any.whl"
BASE = "recbole/dataset_example/ml-100k/ml-100k"


@dataclass(frozen=True)
class Rating:
    """One rating, used as an implicit interaction."""

    user: str
    item: str
    ts: float


def wheel() -> Path:
    """The cached recbole wheel, downloaded with pip the first time."""
    if not WHEEL.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "recbole==1.2.1", "-d", CACHE],
            check=True,
        )
    return WHEEL


def _table(z: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    lines = z.read(name).decode("utf-8", errors="replace").splitlines()
    header = [h.split(":", 1)[0] for h in lines[0].split("\t")]
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line]


def load() -> tuple[list[Rating], list[CatalogItem]]:
    """All 100,000 ratings (any rating counts as an interaction) and the 1,682 movies."""
    with zipfile.ZipFile(wheel()) as z:
        inter = _table(z, f"{BASE}.inter")
        items = _table(z, f"{BASE}.item")
    ratings = [Rating(r["user_id"], r["item_id"], float(r["timestamp"])) for r in inter]
    catalog = [
        CatalogItem(r["item_id"], r.get("movie_title", ""), tuple(r.get("class", "").split()))
        for r in items
    ]
    return ratings, catalog
