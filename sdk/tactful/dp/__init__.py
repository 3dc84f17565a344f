"""Differentially private aggregates (OpenDP) and the persistent privacy budget.

`tf.aggregates` releases counts, sums, means, histograms, quantiles, top-k lists and group-bys
over the events, profiles and consent states of users whose consent covers the purpose,
bounding each user's contribution, and charges each release to a dataset's budget.
"""

from tactful.dp.api import Aggregates
from tactful.dp.budget import BudgetStatus
from tactful.dp.engine import Estimate
from tactful.dp.plan import Release, ReleaseRecord
from tactful.dp.popularity import DPPopularity

__all__ = ["Aggregates", "BudgetStatus", "DPPopularity", "Estimate", "Release", "ReleaseRecord"]
