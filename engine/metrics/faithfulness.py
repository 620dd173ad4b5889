"""Faithfulness metrics: how the target's probability moves when the map's pixels are removed.

Every metric perturbs the model input (normalised, at the model's input size, NCHW) using the map
at that size, and reads the target class's probability from the model's head (softmax, or sigmoid
for sigmoid heads), as pytorch-grad-cam's ``ClassifierOutputSoftmaxTarget`` does. The perturbed
inputs of a batch go through the model together, in passes the scorer sizes (``SCORE_BATCH``
images in ``CamEngine.target_probabilities``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from engine.errors import CamCancelled
from engine.metrics.imputation import impute
from engine.metrics.registry import ROAD_NOISE, get_metric

# (inputs (N, C, H, W), target index (N,)) -> (N,) the target's probability, model left as found.
Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

ROAD_PERCENTILES = (20, 40, 60, 80)
DELETION_STEPS = 32  # 33 points: 0, 1/32, ..., 1 of the pixels


@dataclass(frozen=True)
class MetricSettings:
    """Which metrics to compute and ROAD's imputation noise (seeded, so a run is repeatable)."""

    names: tuple[str, ...]
    road_noise: float = ROAD_NOISE
    seed: int = 0


@dataclass
class MetricBatch:
    """One batch to measure: inputs (B, C, H, W) normalised, maps (B, H, W) in [0, 1]."""

    inputs: torch.Tensor
    maps: np.ndarray
    targets: torch.Tensor  # (B,) class index per image
    scorer: Scorer
    settings: MetricSettings
    cancel: Callable[[], bool] | None = None  # checked once per image and metric
    # (B,) the target's probability for the unperturbed inputs, when the caller has it already.
    known_base: torch.Tensor | None = None

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise CamCancelled()

    @property
    def base(self) -> torch.Tensor:
        """(B,) the target's probability for the unperturbed inputs."""
        if self.known_base is None:
            self.known_base = self.scorer(self.inputs, self.targets)
        return self.known_base


MetricFunction = Callable[[MetricBatch], dict[str, np.ndarray]]


def evaluate(batch: MetricBatch) -> list[dict[str, float]]:
    """Each image's value of every metric in ``batch.settings.names``."""
    values: dict[str, np.ndarray] = {}
    specs = {get_metric(name).function: get_metric(name) for name in batch.settings.names}
    for spec in specs.values():
        function: MetricFunction = spec.compute()
        values |= function(batch)
    names = batch.settings.names
    return [{name: float(values[name][i]) for name in names} for i in range(len(batch.maps))]


def _repeat_targets(targets: torch.Tensor, times: int) -> torch.Tensor:
    return targets.repeat_interleave(times)


def road_masks(cam: np.ndarray) -> list[np.ndarray]:
    """The kept-pixel masks (H, W bool) of MoRF then LeRF at each of ``ROAD_PERCENTILES``.

    As pytorch-grad-cam: MoRF keeps the pixels below the map's p-th percentile, LeRF those of
    (1 - map) below its p-th percentile; the comparison runs in torch as it does there.
    """
    masks = []
    for values in (cam, 1.0 - cam):
        tensor = torch.from_numpy(np.ascontiguousarray(values))
        for percentile in ROAD_PERCENTILES:
            masks.append((tensor < np.percentile(values, percentile)).numpy())
    return masks


def road_scores(batch: MetricBatch) -> dict[str, np.ndarray]:
    """ROAD (Rong et al. 2022): the probability change after noisy linear imputation of the
    pixels each mask removes, averaged over the percentiles; combined = (LeRF - MoRF) / 2."""
    images = batch.inputs.float().cpu().numpy()
    imputed = []
    for image, cam in zip(images, batch.maps, strict=True):
        # Seeded by the map too, so a value does not depend on the batch size or the order.
        batch.check_cancel()
        rng = np.random.default_rng([batch.settings.seed, zlib.crc32(cam.tobytes())])
        for known in road_masks(cam):
            imputed.append(impute(image, known, batch.settings.road_noise, rng))
    per_image = 2 * len(ROAD_PERCENTILES)
    tensor = torch.from_numpy(np.stack(imputed)).to(batch.inputs.device)
    scores = batch.scorer(tensor, _repeat_targets(batch.targets, per_image))
    change = (scores.view(-1, per_image) - batch.base[:, None]).float().cpu().numpy()
    half = len(ROAD_PERCENTILES)
    # pytorch-grad-cam averages float32 scores; so does this.
    morf = change[:, :half].mean(axis=1, dtype=np.float32)
    lerf = change[:, half:].mean(axis=1, dtype=np.float32)
    return {"road_morf": morf, "road_lerf": lerf, "road_combined": (lerf - morf) / 2}


def confidence_change(batch: MetricBatch) -> dict[str, np.ndarray]:
    """Probability of the input times the map minus that of the input (pytorch-grad-cam's
    ``CamMultImageConfidenceChange``)."""
    maps = torch.from_numpy(batch.maps).to(batch.inputs.device)[:, None]
    scores = batch.scorer(batch.inputs * maps, batch.targets)
    return {"confidence_change": (scores - batch.base).float().cpu().numpy()}


def pixel_order(cam: np.ndarray) -> np.ndarray:
    """Each pixel's rank (flat, row-major) in the map's order: highest first, ties row-major."""
    order = np.argsort(-cam.reshape(-1), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank


def _step_masks(cam: np.ndarray, device: torch.device) -> torch.Tensor:
    """(33, 1, H, W) bool: True where a pixel is among the first k_j of the order at step j."""
    rank = torch.from_numpy(pixel_order(cam)).to(device)
    total = rank.numel()
    counts = torch.tensor(
        [step * total // DELETION_STEPS for step in range(DELETION_STEPS + 1)], device=device
    )
    return (rank[None] < counts[:, None]).view(-1, 1, *cam.shape)


def _curve_auc(
    batch: MetricBatch, make: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> np.ndarray:
    """Area under each image's probability curve over ``make``'s 33 perturbed inputs."""
    areas = []
    for i, cam in enumerate(batch.maps):
        batch.check_cancel()
        steps = _step_masks(cam, batch.inputs.device)
        perturbed = make(batch.inputs[i], steps)
        curve = batch.scorer(perturbed, _repeat_targets(batch.targets[i : i + 1], len(steps)))
        areas.append(np.trapezoid(curve.float().cpu().numpy(), dx=1.0 / DELETION_STEPS))
    return np.float32(areas)


def deletion_auc(batch: MetricBatch) -> dict[str, np.ndarray]:
    """Deletion (Petsiuk et al. 2018): most relevant pixels first set to 0 (the dataset mean)."""

    def delete(image: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
        return torch.where(removed, torch.zeros_like(image), image[None])

    return {"deletion_auc": _curve_auc(batch, delete)}


def blurred(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) blurred with OpenCV's Gaussian of sigma = shorter side / 16."""
    pixels = image.float().cpu().numpy().transpose(1, 2, 0)
    sigma = min(pixels.shape[:2]) / 16
    out = cv2.GaussianBlur(np.ascontiguousarray(pixels), (0, 0), sigma)
    out = out.reshape(pixels.shape)  # OpenCV drops a single channel's axis
    return torch.from_numpy(out.transpose(2, 0, 1).copy()).to(image.device, image.dtype)


def insertion_auc(batch: MetricBatch) -> dict[str, np.ndarray]:
    """Insertion (Petsiuk et al. 2018): most relevant pixels first put back into the blurred
    input."""

    def insert(image: torch.Tensor, inserted: torch.Tensor) -> torch.Tensor:
        return torch.where(inserted, image[None], blurred(image)[None])

    return {"insertion_auc": _curve_auc(batch, insert)}
