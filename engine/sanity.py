"""The sanity check (Adebayo et al. 2018): does the map change when the weights are randomised?

The model's weights are re-initialised cascading from the logits down, stage by stage, on a deep
copy (the loaded model is never touched), each module with its own ``reset_parameters()`` under
a seeded generator; the map is recomputed at every stage and compared with the original by
Spearman's rank correlation and SSIM, both at the model's input size. A map that barely changes
when every weight is random shows the image, not what the model learned.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from engine.cam import CamEngine, TargetSpec
from engine.errors import CamCancelled
from engine.figures import render_tiles
from engine.methods.registry import Smoothing
from engine.metrics.measure import input_size_map
from engine.render import render_heatmap

SANITY_COLUMNS = ("image", "method", "layer", "stage", "randomised", "spearman", "ssim", "flat")
# Spearman with the original still at or above this when every weight is random: flagged.
FLAG_SPEARMAN = 0.5
BATCH = 8  # images per model pass
# (engine, images, target indices) -> (N, H, W) maps at the model's input size in [0, 1].
MapFunction = Callable[[CamEngine, Sequence[np.ndarray], Sequence[int]], np.ndarray]


@dataclass(frozen=True)
class Stage:
    """One step of the cascade: the modules re-initialised at it (and all before it)."""

    name: str  # the modules' dotted names, joined with '+'
    modules: tuple[nn.Module, ...]


@dataclass(frozen=True)
class SanityRow:
    """One image at one stage, compared with its original map."""

    image: str
    stage: int
    randomised: str
    spearman: float
    ssim: float
    flat: bool


@dataclass(frozen=True)
class SanityResult:
    """The cascade's rows, each image's maps (original first) and the verdict."""

    rows: tuple[SanityRow, ...]
    maps: dict[str, np.ndarray]  # image -> (stages + 1, H, W)
    stage_names: tuple[str, ...]
    flagged: bool
    message: str


def cascade_stages(model: nn.Module) -> list[Stage]:
    """The model's top-level modules holding parameters, from the logits down; a Sequential or
    ModuleList is opened one level, so VGG's ``features`` or a ResNet's ``layer4`` become one
    stage per block. The root's own parameters (a ViT's position embedding) go into the last."""
    prefix, root = "", model
    while not list(root.parameters(recurse=False)):
        # A wrapper with one module holding every weight (a Hugging Face folder's adapter
        # around the transformers model): the stages are that module's, not one "model".
        holders = [(n, c) for n, c in root.named_children() if any(True for _ in c.parameters())]
        if len(holders) != 1 or isinstance(holders[0][1], nn.Sequential | nn.ModuleList):
            break
        prefix, root = f"{prefix}{holders[0][0]}.", holders[0][1]
    stages: list[Stage] = []
    for name, child in root.named_children():
        if isinstance(child, nn.Sequential | nn.ModuleList):
            parts = [(f"{prefix}{name}.{n}", c) for n, c in child.named_children()]
        else:
            parts = [(f"{prefix}{name}", child)]
        stages += [Stage(n, (c,)) for n, c in parts if any(True for _ in c.parameters())]
    stages.reverse()
    own = list(root.parameters(recurse=False))
    if own and stages:
        last = stages[-1]
        stages[-1] = Stage(f"{last.name}+(root)", (*last.modules, _RootParameters(own)))
    return stages


class _RootParameters(nn.Module):
    """The root module's own parameters, as a module of the last stage."""

    def __init__(self, parameters: Sequence[nn.Parameter]) -> None:
        super().__init__()
        self.held = list(parameters)

    def reset_parameters(self) -> None:
        for parameter in self.held:
            nn.init.normal_(parameter, std=0.02)


def randomise(module: nn.Module) -> None:
    """Re-initialise every parameter under ``module``: each submodule's own
    ``reset_parameters()``; parameters of a module without one, from N(0, 0.02)."""
    with torch.no_grad():
        for sub in module.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                for parameter in sub.parameters(recurse=False):
                    nn.init.normal_(parameter, std=0.02)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank (as Spearman's coefficient needs)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Signed Spearman rank correlation; 0 when either map is flat (never NaN)."""
    ra, rb = _ranks(a.ravel()), _ranks(b.ravel())
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) of two maps in [0, 1]."""
    c1, c2 = 0.01**2, 0.03**2
    x, y = np.float64(a), np.float64(b)

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())


def engine_maps(method: str, layer: str, smoothing: Smoothing | None = None) -> MapFunction:
    """The registry method's maps at ``layer``, at the model's input size."""

    def maps(engine: CamEngine, images: Sequence[np.ndarray], targets: Sequence[int]):
        out = []
        for start in range(0, len(images), BATCH):
            results = engine.explain(
                images[start : start + BATCH],
                method,
                layer,
                target=TargetSpec("gt"),
                ground_truth=list(targets[start : start + BATCH]),
                smoothing=smoothing,
            )
            out += [input_size_map(engine, result) for result in results]
        return np.stack(out)

    return maps


def _copy_engine(engine: CamEngine) -> CamEngine:
    return CamEngine(
        copy.deepcopy(engine.model),
        engine.classes,
        engine.preprocess,
        engine.cam,
        engine.output,
        engine.device,
        engine.max_batch,
        engine.load_info,
    )


def run_sanity(
    engine: CamEngine,
    images: dict[str, np.ndarray],
    maps: MapFunction,
    seed: int = 0,
    description: str = "the map",
    cancel: Callable[[], bool] | None = None,
) -> SanityResult:
    """The cascade over ``images`` (name -> RGB): each image's map at every stage.

    Each image explains its original predicted class at every stage. ``description`` names the
    method and layer in the verdict; ``cancel`` is checked once per stage.
    """
    names, pictures = list(images), list(images.values())
    targets = [
        result.predicted.index
        for start in range(0, len(pictures), BATCH)
        for result in engine.explain(pictures[start : start + BATCH])
    ]
    original = maps(engine, pictures, targets)
    randomised = _copy_engine(engine)
    stages = cascade_stages(randomised.model)
    per_stage = [original]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for stage in stages:
            if cancel is not None and cancel():
                raise CamCancelled()
            for module in stage.modules:
                randomise(module)
            per_stage.append(maps(randomised, pictures, targets))
    stacked = np.stack(per_stage, axis=1)  # (N, stages + 1, H, W)
    rows = []
    for i, name in enumerate(names):
        for number, stage in enumerate(stages, start=1):
            stage_map = stacked[i, number]
            rows.append(
                SanityRow(
                    name,
                    number,
                    stage.name,
                    spearman(stage_map, stacked[i, 0]),
                    ssim(stage_map, stacked[i, 0]),
                    bool(stage_map.max() == stage_map.min()),
                )
            )
    final = [row.spearman for row in rows if row.stage == len(stages)]
    flagged, message = _verdict(float(np.mean(final)) if final else 0.0, description)
    return SanityResult(
        tuple(rows),
        {name: stacked[i] for i, name in enumerate(names)},
        tuple(stage.name for stage in stages),
        flagged,
        message,
    )


def _verdict(final_spearman: float, description: str) -> tuple[bool, str]:
    if final_spearman >= FLAG_SPEARMAN:
        return True, (
            f"{description} barely changes when every weight is random (mean Spearman "
            f"{final_spearman:.2f} with the original): it shows the image more than what the "
            "model learned; do not trust it"
        )
    return False, (
        f"{description} changes when the weights are randomised (mean Spearman "
        f"{final_spearman:.2f} with the original once every weight is random): it depends on "
        "what the model learned"
    )


def sanity_strip(maps: np.ndarray, stage_names: Sequence[str], colormap: str, title: str):
    """The cascade strip: the original map, then each stage's, as heatmaps in one row."""
    tiles = [render_heatmap(m, colormap) for m in maps]
    return render_tiles(tiles, ["original", *stage_names], columns=len(tiles), title=title)


def sanity_csv_rows(result: SanityResult, method: str, layer: str) -> list[dict[str, str]]:
    """``result``'s rows as ``SANITY_COLUMNS`` fields."""
    return [
        {
            "image": row.image,
            "method": method,
            "layer": layer,
            "stage": str(row.stage),
            "randomised": row.randomised,
            "spearman": f"{row.spearman:.4f}",
            "ssim": f"{row.ssim:.4f}",
            "flat": str(int(row.flat)),
        }
        for row in result.rows
    ]
