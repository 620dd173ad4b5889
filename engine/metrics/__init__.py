"""Faithfulness metrics of a map: the registry (torch-free) and their computation."""

from engine.metrics.registry import METRICS, MetricSpec, get_metric, metric_names, parse_metrics

__all__ = ["METRICS", "MetricSpec", "get_metric", "metric_names", "parse_metrics"]
