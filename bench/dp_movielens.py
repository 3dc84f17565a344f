"""MovieLens 100K interactions from the recbole==1.2.1 wheel (downloaded once, never installed).

`pip download --no-deps recbole==1.2.1 -d ~/.cache/tactful` fetches the wheel; the ratings are
read from recbole/dataset_example/ml-100k/ml-100k.inter inside it with zipfile.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path.home() / ".cache" / "tactful"
WHEEL = CACHE / "recbole-1.2.1-py3-none-any.whl"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"


def ensure_wheel() -> Path:
    """The recbole wheel, downloaded with pip (no dependencies, no install) if missing."""
    if not WHEEL.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "recbole==1.2.1",
                "-d",
                str(CACHE),
            ],
            check=True,
        )
    return WHEEL


def ratings() -> list[tuple[str, str, float, int]]:
    """(user, item, rating, unix time) rows of ML-100K, 100,000 of them."""
    with zipfile.ZipFile(ensure_wheel()) as wheel:
        lines = wheel.read(MEMBER).decode().splitlines()
    rows = []
    for line in lines[1:]:
        user, item, rating, ts = line.split("\t")
        rows.append((user, item, float(rating), int(float(ts))))
    return rows
