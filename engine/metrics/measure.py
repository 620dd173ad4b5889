"""Faithfulness metrics of finished maps: the engine's model, inputs and maps at input size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.cam import CamEngine, CamResult, CancelCheck, normalize_maps, upsample_map
from engine.metrics.faithfulness import MetricBatch, MetricSettings, evaluate


def input_size_map(engine: CamEngine, result: CamResult, blur_sigma: float = 0.0) -> np.ndarray:
    """The result's map normalised and upsampled to the model's input size, as it is drawn."""
    mode = engine.cam.normalize
    norm = normalize_maps(torch.from_numpy(np.float32(result.raw))[None], mode)[0].numpy()
    return upsample_map(norm, engine.size, blur_sigma, mode)


def measure(
    engine: CamEngine,
    images: Sequence[np.ndarray],
    results: Sequence[CamResult],
    settings: MetricSettings,
    blur_sigma: float = 0.0,
    cancel: CancelCheck | None = None,
) -> list[dict[str, float]]:
    """Each image's metrics for its map and target class (``settings.names``, seeded)."""
    if not images:
        return []
    maps = np.stack([input_size_map(engine, result, blur_sigma) for result in results])
    targets = torch.tensor([result.target_index for result in results], device=engine.device)
    batch = MetricBatch(
        inputs=engine.prepare_nchw(images),
        maps=maps,
        targets=targets,
        scorer=engine.target_probabilities,
        settings=settings,
        cancel=cancel,
        known_base=known_probabilities(results, engine.device),
    )
    return evaluate(batch)


def known_probabilities(results: Sequence[CamResult], device: torch.device) -> torch.Tensor | None:
    """The target's probability from the maps' own pass, when each target is in its top k
    (it is the same forward pass on the same input); None: the metrics run it again."""
    found = []
    for result in results:
        match = [p.probability for p in result.top_k if p.index == result.target_index]
        if not match:
            return None
        found.append(match[0])
    return torch.tensor(found, dtype=torch.float32, device=device)
