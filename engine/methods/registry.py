"""The method registry: the one list of CAM methods, with each one's label, needs and formula.

Importable without torch (the window reads names and labels before torch is loaded): each
formula is named by a "module:attribute" path and imported on first use. Adding a method is one
formula module (or one function in an existing one), one entry in ``METHODS`` and its test.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from engine.errors import InspectorError

if TYPE_CHECKING:
    import torch

CancelCheck = Callable[[], bool]
ProgressCallback = Callable[[int, int], None]
# (image index i, masks (n, H, W) in [0, 1]) -> (n,) the target's score for image i times each
# mask; the engine runs the model and leaves it as it found it.
MaskedScores = Callable[[int, "torch.Tensor"], "torch.Tensor"]
# () -> (B, C, H, W) the target scores' guided-backpropagation gradient at the model input.
GuidedGradient = Callable[[], "torch.Tensor"]


@dataclass(frozen=True)
class Smoothing:
    """pytorch-grad-cam's two smoothing options, for any method.

    ``aug``: the mean of the maps of six augmented inputs (horizontal flip x brightness 0.9,
    1.0, 1.1), each min-max normalised and flipped back, the target fixed to the un-augmented
    image's (six passes). ``eigen``: the weighted activations' first principal component instead
    of their sum.
    """

    aug: bool = False
    eigen: bool = False


NO_SMOOTHING = Smoothing()


@dataclass(frozen=True)
class MethodInputs:
    """What the engine hands a method for one layer of one pass; tensors are on the device."""

    activation: torch.Tensor  # (B, C, h, w)
    gradient: torch.Tensor | None = None  # (B, C, h, w); None unless the method needs gradients
    input_size: tuple[int, int] = (0, 0)  # the model input's (H, W)
    masked_scores: MaskedScores | None = None  # for methods that run the model again
    max_batch: int | None = None  # images per model pass the model accepts; None: any
    cancel: CancelCheck | None = None
    progress: ProgressCallback | None = None  # (steps done, steps) of a long method
    eigen_smooth: bool = False  # see Smoothing
    guided_gradient: GuidedGradient | None = None  # for Guided Grad-CAM (runs the model again)


RawMapFunction = Callable[[MethodInputs], "torch.Tensor"]  # -> (B, h, w) before the ReLU


@dataclass(frozen=True)
class MethodSpec:
    """One CAM method: its name (profiles, CLI, sessions), label (the window), needs, formula."""

    name: str
    label: str
    needs_gradients: bool  # whether the pass must take gradients at the layer
    extra_passes: bool  # whether it runs the model again (slow: it reports progress)
    function: str  # "module:attribute" of its RawMapFunction

    def raw_map(self, inputs: MethodInputs) -> torch.Tensor:
        """The (B, h, w) map before the ReLU."""
        return _resolve(self.function)(inputs)


@cache
def _resolve(path: str) -> RawMapFunction:
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


_GRADIENT = "engine.methods.gradient"
METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("gradcam", "Grad-CAM", True, False, f"{_GRADIENT}:gradcam"),
    MethodSpec("gradcam++", "Grad-CAM++", True, False, f"{_GRADIENT}:gradcam_plus_plus"),
    MethodSpec("xgradcam", "XGrad-CAM", True, False, f"{_GRADIENT}:xgradcam"),
    MethodSpec("hirescam", "HiResCAM", True, False, f"{_GRADIENT}:hirescam"),
    MethodSpec("layercam", "LayerCAM", True, False, f"{_GRADIENT}:layercam"),
    MethodSpec("eigencam", "Eigen-CAM", False, False, "engine.methods.eigencam:eigencam"),
    MethodSpec(
        "guidedgradcam",
        "Guided Grad-CAM",
        True,
        True,
        "engine.methods.guided:guided_gradcam",
    ),
    MethodSpec(
        "scorecam",
        "Score-CAM (runs the model per channel)",
        False,
        True,
        "engine.methods.scorecam:scorecam",
    ),
)
DEFAULT_METHOD = "gradcam"
_BY_NAME = {spec.name: spec for spec in METHODS}


def method_names() -> tuple[str, ...]:
    """Every method's name, in the order the window and the CLI list them."""
    return tuple(_BY_NAME)


def describe_method(name: str) -> str:
    """'Grad-CAM (gradcam)' for a known method; a name this version does not know, as it is
    (a session or results file may come from another version)."""
    spec = _BY_NAME.get(name)
    return name if spec is None else f"{spec.label} ({spec.name})"


def get_method(name: str) -> MethodSpec:
    """The method called ``name``; an InspectorError listing the known ones if there is none."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise InspectorError(
            f"unknown method '{name}': use one of {', '.join(method_names())}"
        ) from None
