"""The persistent privacy budget: epsilon granted and spent per dataset, reserved atomically.

Amounts are kept in integer micro-epsilons. A reservation is one conditional UPDATE
(`spent + cost <= total`), so two processes can never both take the last of a budget: on
PostgreSQL the row lock makes the second UPDATE re-check its condition after the first
commits; on SQLite every transaction of the store starts with BEGIN IMMEDIATE.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from tactful.errors import BudgetExhausted, ValidationError
from tactful.store import now
from tactful.store.tables import PrivacyBudget, table_of

_budget = table_of(PrivacyBudget)

MICRO = 1_000_000
MAX_TOTAL = 1000.0  # epsilon; far beyond any meaningful budget, and fits 32-bit columns
DATASET_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def to_micro(epsilon: float) -> int:
    """Epsilon in micro-epsilons, rounded up (a cost is never under-charged)."""
    return math.ceil(epsilon * MICRO - 1e-6)


def check_dataset(dataset: object) -> str:
    """Validate a dataset name: lowercase letters, digits, '_', '.', '-', at most 64."""
    if not isinstance(dataset, str) or not DATASET_RE.match(dataset):
        raise ValidationError(
            "dataset must be 1-64 characters of lowercase letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (e.g. 'default', 'popularity')"
        )
    return dataset


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A dataset's privacy budget: epsilon granted in total, spent, and remaining."""

    dataset: str
    total: float
    spent: float

    @property
    def remaining(self) -> float:
        """Epsilon still available for releases."""
        return max(0.0, self.total - self.spent)


class BudgetLedger:
    """Reads, grants and reserves privacy budgets inside the caller's transaction."""

    def status(self, conn: Connection, dataset: str) -> BudgetStatus:
        """The budget of one dataset (zero if none was ever granted)."""
        row = conn.execute(
            select(_budget.c.total_micro, _budget.c.spent_micro).where(_budget.c.dataset == dataset)
        ).first()
        if row is None:
            return BudgetStatus(dataset, 0.0, 0.0)
        return BudgetStatus(dataset, row.total_micro / MICRO, row.spent_micro / MICRO)

    def all(self, conn: Connection) -> list[BudgetStatus]:
        """Every dataset's budget, by name."""
        rows = conn.execute(
            select(_budget.c.dataset, _budget.c.total_micro, _budget.c.spent_micro).order_by(
                _budget.c.dataset
            )
        )
        return [BudgetStatus(r.dataset, r.total_micro / MICRO, r.spent_micro / MICRO) for r in rows]

    def grant(self, conn: Connection, dataset: str, epsilon: float) -> BudgetStatus:
        """Add `epsilon` to the dataset's total (creating it); returns the new status."""
        check_dataset(dataset)
        if not _positive(epsilon):
            raise ValidationError("a budget grant must be a finite epsilon > 0")
        add = to_micro(epsilon)
        current = self.status(conn, dataset)
        if current.total + epsilon > MAX_TOTAL:
            raise ValidationError(
                f"dataset {dataset!r} would hold more than {MAX_TOTAL:g} epsilon in total; "
                "such a budget protects nobody"
            )
        stamp = now()
        changed = conn.execute(
            update(_budget)
            .where(_budget.c.dataset == dataset)
            .values(total_micro=_budget.c.total_micro + add, updated_at=stamp)
        ).rowcount
        if not changed:
            conn.execute(
                insert(_budget).values(
                    dataset=dataset, total_micro=add, spent_micro=0, updated_at=stamp
                )
            )
        return self.status(conn, dataset)

    def reserve(self, conn: Connection, dataset: str, epsilon: float) -> BudgetStatus:
        """Take `epsilon` from the dataset's budget, or raise BudgetExhausted and take nothing."""
        cost = to_micro(epsilon)
        taken = conn.execute(
            update(_budget)
            .where(
                (_budget.c.dataset == dataset)
                & (_budget.c.spent_micro + cost <= _budget.c.total_micro)
            )
            .values(spent_micro=_budget.c.spent_micro + cost, updated_at=now())
        ).rowcount
        status = self.status(conn, dataset)
        if taken != 1:
            hint = (
                f"an operator can add budget with `tactful budget grant {dataset} EPSILON "
                "--operator NAME`"
            )
            if status.total == 0:
                raise BudgetExhausted(
                    f"dataset {dataset!r} has no privacy budget yet; {hint}",
                    dataset=dataset,
                    remaining=0.0,
                )
            raise BudgetExhausted(
                f"privacy budget of dataset {dataset!r} is exhausted: this release needs "
                f"epsilon {epsilon:g}, {status.remaining:g} of {status.total:g} is left; "
                f"ask for less or {hint}",
                dataset=dataset,
                remaining=status.remaining,
            )
        return status


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
