"""Consent-aware experiments: declaration, keyed-hash assignment, exposures, DP results.

Only users whose consent covers an experiment's purpose are enrolled and counted; the others
get the control experience. Assignments are a keyed hash of the stored pseudonym (stable in
every process of the store); exposures are encrypted per subject; results are released with
differential privacy, charged to the experiment's own budget (dataset `experiment.<id>`).
"""

from tactful.experiments.assign import Assigner
from tactful.experiments.core import Change, Experiments
from tactful.experiments.model import (
    Assignment,
    CountEstimate,
    Difference,
    Experiment,
    ExperimentResults,
    RateEstimate,
    Variant,
    VariantResult,
)
from tactful.experiments.records import Exposures

__all__ = [
    "Assigner",
    "Assignment",
    "Change",
    "CountEstimate",
    "Difference",
    "Experiment",
    "ExperimentResults",
    "Experiments",
    "Exposures",
    "RateEstimate",
    "Variant",
    "VariantResult",
]
