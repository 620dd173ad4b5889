"""The metric registry: the one list of faithfulness metrics, importable without torch.

Each metric is a ``results.csv`` column. Metrics computed together (ROAD's three numbers come
from the same imputed images) share one ``function``, named by a "module:attribute" path and
imported on first use, so the window can list metrics before torch is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from engine.errors import InspectorError

ROAD_NOISE = 0.01  # pytorch-grad-cam's NoisyLinearImputer default, in normalised-input units


@dataclass(frozen=True)
class MetricSpec:
    """One faithfulness metric: its column name, label, which way is better, its computation."""

    name: str  # the results.csv column
    label: str
    higher_is_better: bool
    function: str  # "module:attribute" of the function that computes its group
    description: str
    needs: str = ""  # an optional package it cannot run without ('metrics' extra)

    def compute(self) -> Callable:
        """The function computing this metric's group (imports torch on first use)."""
        return _resolve(self.function)


@cache
def _resolve(path: str) -> Callable:
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


_F = "engine.metrics.faithfulness"
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "road_morf",
        "ROAD, most relevant first",
        False,
        f"{_F}:road_scores",
        "change of the target's probability when the most relevant pixels are imputed",
        "scipy",
    ),
    MetricSpec(
        "road_lerf",
        "ROAD, least relevant first",
        True,
        f"{_F}:road_scores",
        "change of the target's probability when the least relevant pixels are imputed",
        "scipy",
    ),
    MetricSpec(
        "road_combined",
        "ROAD combined",
        True,
        f"{_F}:road_scores",
        "(road_lerf - road_morf) / 2",
        "scipy",
    ),
    MetricSpec(
        "confidence_change",
        "Confidence change",
        True,
        f"{_F}:confidence_change",
        "probability of the image times the map minus that of the image",
    ),
    MetricSpec(
        "deletion_auc",
        "Deletion AUC",
        False,
        f"{_F}:deletion_auc",
        "area under the probability as the most relevant pixels are set to the mean",
    ),
    MetricSpec(
        "insertion_auc",
        "Insertion AUC",
        True,
        f"{_F}:insertion_auc",
        "area under the probability as pixels are put back into a blurred image",
    ),
)
_BY_NAME = {spec.name: spec for spec in METRICS}


def metric_names() -> tuple[str, ...]:
    """Every metric's name (its results.csv column), in column order."""
    return tuple(_BY_NAME)


def get_metric(name: str) -> MetricSpec:
    """The metric called ``name``; an InspectorError listing the known ones if there is none."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise InspectorError(
            f"unknown metric '{name}': use one of {', '.join(metric_names())}"
        ) from None


def parse_metrics(text: str) -> tuple[str, ...]:
    """'all' or a comma-separated list of metric names, validated, in column order."""
    if text.strip().lower() == "all":
        return metric_names()
    wanted = {get_metric(part.strip()).name for part in text.split(",") if part.strip()}
    if not wanted:
        raise InspectorError("--metrics needs 'all' or metric names separated by commas")
    return tuple(name for name in metric_names() if name in wanted)


def missing_package(name: str) -> str:
    """The package metric ``name`` needs and this installation lacks, or ''."""
    needs = get_metric(name).needs
    return needs if needs and importlib.util.find_spec(needs) is None else ""


def available_metrics() -> tuple[str, ...]:
    """The metrics this installation can compute (ROAD needs SciPy, the 'metrics' extra)."""
    return tuple(name for name in metric_names() if not missing_package(name))


def require_metrics(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names``, or an InspectorError naming the package a metric needs and how to get it."""
    for name in names:
        package = missing_package(name)
        if package:
            raise InspectorError(
                f"{name} needs {package}: pip install 'gradcam-inspector[metrics]' "
                "(or choose other metrics)"
            )
    return names
