"""Faithfulness metrics benchmark: cost against pytorch-grad-cam's metric classes, same run.

Run: `PYTHONPATH=. python benchmarks/bench_metrics.py [--device cpu] [--images 4] [--rounds 3]`.
The demo model (ResNet18 at 160x160) and its sample images; each contender measures the same
maps and targets. ROAD: pytorch-grad-cam's ``ROADMostRelevantFirstAverage`` and
``ROADLeastRelevantFirstAverage`` at percentiles 20/40/60/80 (what ``ROADCombined`` runs) against
``road_scores``; confidence change: ``CamMultImageConfidenceChange``; deletion: 33 calls of
pytorch-grad-cam's ``PerturbationConfidenceMetric`` (its way to score a perturbation) against
``deletion_auc``. Figures are medians of interleaved rounds, printed as ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
from pytorch_grad_cam.metrics.perturbation_confidence import PerturbationConfidenceMetric
from pytorch_grad_cam.metrics.road import (
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from engine.cam import CamEngine
from engine.images import load_image
from engine.metrics.faithfulness import (
    DELETION_STEPS,
    ROAD_PERCENTILES,
    MetricBatch,
    MetricSettings,
    evaluate,
    pixel_order,
)
from engine.metrics.measure import input_size_map, known_probabilities
from engine.profile import demo_profile_path, load_profile
from engine.resources import resource_path


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per contender over alternating rounds, after one warm-up each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def reference_deletion(inputs, maps, targets, model) -> np.ndarray:
    """Deletion AUC written with pytorch-grad-cam's PerturbationConfidenceMetric, step by step."""
    curves = []
    for step in range(DELETION_STEPS + 1):

        def delete(tensor: torch.Tensor, cam: torch.Tensor, step: int = step) -> torch.Tensor:
            rank = torch.from_numpy(pixel_order(cam.numpy())).view(cam.shape)
            removed = rank < step * cam.numel() // DELETION_STEPS
            return torch.where(removed, torch.zeros_like(tensor), tensor)

        metric = PerturbationConfidenceMetric(delete)
        curves.append(metric(inputs, maps, targets, model, return_diff=False))
    return np.trapezoid(np.float32(curves), dx=1 / DELETION_STEPS, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    engine = CamEngine.from_profile(load_profile(demo_profile_path()), args.device)
    folder = resource_path("samples", "IMAGES")
    paths = sorted(folder.iterdir())[: args.images]
    images = [load_image(path) for path in paths]
    results = engine.explain(images)
    maps = np.stack([input_size_map(engine, result) for result in results])
    targets = [result.target_index for result in results]
    inputs = engine.prepare_nchw(images).contiguous()
    known = known_probabilities(results, engine.device)
    ref_targets = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    model, percentiles = engine.model, list(ROAD_PERCENTILES)
    morf, lerf = (
        ROADMostRelevantFirstAverage(percentiles),
        ROADLeastRelevantFirstAverage(percentiles),
    )

    def ours(*names: str) -> Callable[[], object]:
        def run() -> object:
            batch = MetricBatch(
                inputs,
                maps,
                torch.tensor(targets, device=engine.device),
                engine.target_probabilities,
                MetricSettings(names),
                known_base=known,  # the maps' own pass gave it, as in batch --metrics
            )
            return evaluate(batch)

        return run

    print(f"{len(images)} images, demo ResNet18 at {engine.size}, {engine.device}")
    pairs = {
        "ROAD (MoRF + LeRF, 4 percentiles)": (
            ours("road_morf", "road_lerf", "road_combined"),
            lambda: (
                morf(inputs, maps, ref_targets, model),
                lerf(inputs, maps, ref_targets, model),
            ),
        ),
        "confidence change": (
            ours("confidence_change"),
            lambda: CamMultImageConfidenceChange()(inputs, maps, ref_targets, model),
        ),
        "deletion AUC (33 points)": (
            ours("deletion_auc"),
            lambda: reference_deletion(inputs, maps, ref_targets, model),
        ),
    }
    for label, (mine, theirs) in pairs.items():
        times = interleaved({"ours": mine, "pytorch-grad-cam": theirs}, args.rounds)
        per_image = {k: v / len(images) for k, v in times.items()}
        print(
            f"{label}: ours {per_image['ours'] * 1000:.0f} ms/image, pytorch-grad-cam "
            f"{per_image['pytorch-grad-cam'] * 1000:.0f} ms/image, "
            f"{times['pytorch-grad-cam'] / times['ours']:.1f}x faster"
        )


if __name__ == "__main__":
    main()
