"""Class activation maps: hooks on target layers, one model pass, every method from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import nn

from engine.choices import Resize
from engine.errors import CamCancelled, InspectorError
from engine.heads import Head, head_classes, make_head, select_logits
from engine.layers import LayerInventory, dummy_input, get_module, layer_inventory
from engine.memory import check_input_size
from engine.methods.registry import (
    CancelCheck,
    MaskedScores,
    MethodInputs,
    MethodSpec,
    ProgressCallback,
    Smoothing,
    get_method,
)
from engine.model_state import frozen_model
from engine.profile import CamDefaults, OutputSpec, PreprocessSpec
from engine.tokens import GridLayout, check_reshape_mode, find_grid, prefix_tokens

if TYPE_CHECKING:
    from engine.profile import ModelProfile

TOP_K = 5
# A map whose range is below this share of its maximum is one value everywhere (float32 noise).
FLAT_TOLERANCE = 1e-6
# pytorch-grad-cam's aug_smooth: ttach's HorizontalFlip x Multiply(0.9, 1, 1.1).
AUGMENTATIONS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))
SCORE_BATCH = 64  # perturbed inputs per model pass when only the target's probability is read


@dataclass(frozen=True)
class Prediction:
    """One class with its probability."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class TargetSpec:
    """Which class to explain: the prediction, the ground truth, or a fixed class index."""

    kind: str  # "pred", "gt" or "index"
    index: int | None = None


def parse_target(spec: str | int | None, classes: Sequence[str]) -> TargetSpec:
    """Read 'pred', 'gt', a class index or a class name (case-insensitive)."""
    if spec is None or spec == "pred":
        return TargetSpec("pred")
    if spec == "gt":
        return TargetSpec("gt")
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(classes):
            raise InspectorError(f"target class {index} is out of range 0..{len(classes) - 1}")
        return TargetSpec("index", index)
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return TargetSpec("index", lowered.index(text.lower()))
    raise InspectorError(
        f"unknown target '{text}': use pred, gt, a class index or one of {', '.join(classes)}"
    )


@dataclass(frozen=True)
class LayerCapture:
    """What one layer gave in one pass: activation and gradient, (C, h, w) float32 on the CPU."""

    activation: np.ndarray
    gradient: np.ndarray | None


@dataclass(frozen=True)
class Capture:
    """One image's forward/backward pass: enough to draw any method's map again, no model pass.

    ``model_input`` is kept for Score-CAM, which needs extra passes of its own.
    """

    image_size: tuple[int, int]
    probabilities: np.ndarray
    target_index: int
    layers: Mapping[str, LayerCapture]
    model_input: np.ndarray
    note: str = ""  # about this image's target (no ground truth known, ...)
    # How the logits were picked out of a tuple/dict output, "" for a plain tensor; the caller
    # decides how often to say it (the CLI and the window: once per model).
    output_note: str = ""

    @property
    def predicted_index(self) -> int:
        return int(np.argmax(self.probabilities))


@dataclass(frozen=True)
class CamResult:
    """A finished map for one image, one layer and one method (CPU numpy only)."""

    method: str
    layer: str
    target_index: int
    target_name: str
    top_k: tuple[Prediction, ...]
    raw: np.ndarray  # (h, w) float32 at layer resolution, after the ReLU, not normalised
    cam: np.ndarray  # (H, W) float32 at the original image size, normalised to [0, 1]
    note: str = ""
    # How top_k's probabilities were made: "softmax" (they sum to 1), "binary" (sigmoid of one
    # output, [1 - p, p]) or "multilabel" (one sigmoid per label; they need not sum to 1).
    head: str = "softmax"
    output_note: str = ""  # as Capture.output_note
    # Why this map should not be trusted, one line ("" when all is well): a flat map.
    warning: str = ""

    @property
    def predicted(self) -> Prediction:
        return self.top_k[0]


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a clear error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InspectorError("CUDA is not available on this machine; use --device cpu")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise InspectorError(f"unknown device '{name}': use cpu, cuda or auto")
    return torch.device(name)


def normalize_maps(raw: torch.Tensor, mode: str = "minmax") -> torch.Tensor:
    """Per-map min-max to [0, 1] with an epsilon, so a flat map stays flat (zeros), never NaN.

    mode "max" divides the (ReLU'd) map by its maximum only, as the Keras Grad-CAM example does;
    an all-zero map stays zeros.
    """
    if mode == "max":
        return _divide_by_max(raw)
    flat = raw.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    shifted = raw - low
    high = shifted.flatten(1).max(dim=1).values[:, None, None]
    return shifted / (high + 1e-7)


def _divide_by_max(raw: torch.Tensor) -> torch.Tensor:
    high = raw.flatten(1).max(dim=1).values[:, None, None]
    # Keras divides by the maximum with no epsilon; a map with no positive value stays zeros.
    return torch.where(high > 0, raw / torch.where(high > 0, high, 1.0), 0.0)


def upsample_map(
    map01: np.ndarray, size: tuple[int, int], blur_sigma: float = 0.0, mode: str = "minmax"
) -> np.ndarray:
    """Bilinear upsampling of a normalised map to (H, W), optional Gaussian blur, min-max again
    (mode "max": divided by its maximum again, never shifted)."""
    height, width = size
    out = cv2.resize(map01.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    if blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    # Interpolation rarely lands on the layer-resolution peak: normalise again at full size.
    if mode == "max":
        high = float(out.max())
        if high > 0:
            out /= high
        return out
    out -= out.min()
    out /= out.max() + 1e-7
    return out


def crop_box(image_size: Sequence[int], spec: PreprocessSpec) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the part of an image the model sees.

    As Hugging Face processors do: the image resized to the input size divided by ``crop``
    (by its shortest edge, or stretched), then the central input-size region kept.
    """
    height, width = int(image_size[0]), int(image_size[1])
    if spec.crop >= 1.0 and spec.resize == Resize.STRETCH:
        return 0, 0, height, width
    if spec.resize == Resize.SHORTEST:
        scale = max(spec.size[0] / spec.crop / height, spec.size[1] / spec.crop / width)
        seen_h, seen_w = spec.size[0] / scale, spec.size[1] / scale
    else:
        seen_h, seen_w = height * spec.crop, width * spec.crop
    crop_h = max(1, min(height, round(seen_h)))
    crop_w = max(1, min(width, round(seen_w)))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def _crop_note(spec: PreprocessSpec) -> tuple[str, ...]:
    if spec.crop >= 1.0 and spec.resize == Resize.STRETCH:
        return ()
    how = "by its shortest edge" if spec.resize == Resize.SHORTEST else "stretched"
    return (
        f"each image is resized {how} and centre-cropped to {spec.size[0]}x{spec.size[1]} "
        f"(crop {spec.crop:g}), as the model's processor does: maps cover that central region",
    )


def _check_finite(probabilities: torch.Tensor, raw: torch.Tensor) -> None:
    """A NaN or infinite score or map is an error, never a result that looks fine."""
    if not bool(torch.isfinite(probabilities).all()):
        raise InspectorError(
            "the model gave non-finite scores (NaN or infinity); check [preprocess] mean and "
            "std and the weights"
        )
    if not bool(torch.isfinite(raw).all()):
        raise InspectorError("the map has non-finite values (NaN or infinity); try another layer")


def _input_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


def _chunk_progress(progress: ProgressCallback, number: int, chunks: int) -> ProgressCallback:
    """Progress of chunk ``number`` of ``chunks`` as a share of the whole run."""
    return lambda done, steps: progress(number * steps + done, chunks * steps)


@dataclass
class _Pass:
    """Tensors of one forward/backward pass, still on the device."""

    logits: torch.Tensor
    target_index: torch.Tensor
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor | None]
    notes: list[str] = field(default_factory=list)
    # Set when the logits are gone (a stored capture): top-k reads these instead.
    probabilities: torch.Tensor | None = None
    output_note: str = ""  # see Capture.output_note


@dataclass(frozen=True)
class LoadInfo:
    """What loading the model found: kept by the engine for sessions and messages."""

    weights_sha256: str | None = None  # None for random initialisation; sessions compare it
    notes: tuple[str, ...] = ()  # what loading the checkpoint had to do, for the user


class CamEngine:
    """A model on a device with its classes and preprocessing; computes CAMs for images."""

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str],
        preprocess: PreprocessSpec,
        cam: CamDefaults,
        output: OutputSpec,
        device: str | torch.device = "auto",
        max_batch: int | None = None,
        load_info: LoadInfo = LoadInfo(),
    ) -> None:
        """``cam.layer``, ``cam.normalize`` and ``cam.reshape`` are what the engine uses of
        ``cam``; ``max_batch`` is how many images per pass the model accepts (None: any)."""
        if preprocess.layout not in ("nchw", "nhwc"):
            raise InspectorError(f"unknown input layout '{preprocess.layout}': use nchw or nhwc")
        check_reshape_mode(cam.reshape)
        self.device = resolve_device(device)
        check_input_size(preprocess.size, self.device.type)  # before the first dummy pass
        self.preprocess = preprocess
        self.cam = cam
        self.output = output
        self.max_batch = max_batch
        self.load_info = load_info
        # oneDNN's CPU convolutions run faster on channels-last tensors (~25% for a ResNet50);
        # the layout changes how weights are stored, not their values.
        self._memory_format = (
            torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        )
        self.model = model.to(self.device, memory_format=self._memory_format)
        self.classes = head_classes(classes, output.activation)
        self.in_channels = _input_channels(model)
        stats = self.in_channels if self.in_channels in (1, 3) else len(preprocess.mean)
        mean, std = list(preprocess.mean)[:stats], list(preprocess.std)[:stats]
        self._mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self._prefix_hint = prefix_tokens(model)
        self.head = self._decide_head()

    @classmethod
    def from_profile(
        cls, profile: ModelProfile, device: str = "auto", trust_pickle: bool = False
    ) -> CamEngine:
        """Load the profile's model and weights (see engine.checkpoint.load_model)."""
        from engine.checkpoint import load_model

        loaded = load_model(profile, trust_pickle=trust_pickle)
        preprocess = loaded.preprocess or profile.preprocess
        return cls(
            loaded.model,
            loaded.classes,
            preprocess,
            profile.cam,
            profile.output,
            device,
            loaded.max_batch,
            LoadInfo(loaded.weights_sha256, (*loaded.notes, *_crop_note(preprocess))),
        )

    def _decide_head(self) -> Head:
        """The head, once: softmax fits any width, but a sigmoid head is binary for one output
        and multi-label for several, so a sigmoid model's width is read from one dummy pass."""
        if self.output.activation != "sigmoid":
            return make_head(self.output.activation, 0)
        dummy = dummy_input(1, self.in_channels, self.size, self.preprocess.layout, self.device)
        with frozen_model(self.model), torch.no_grad():
            logits, _ = select_logits(self.model(dummy), self.output.logits)
        return make_head(self.output.activation, logits.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """The model input's (height, width)."""
        return self.preprocess.size

    # -- layers ---------------------------------------------------------------------------------
    @cached_property
    def inventory(self) -> LayerInventory:
        """Every layer's output shape, from one dummy pass made the first time it is asked; its
        default layer is one that a probe pass shows the predicted class depends on."""
        found = layer_inventory(
            self.model, self.size, self.in_channels, self.cam.reshape, self.preprocess.layout
        )
        if found.default_layer is None:
            return found
        return dataclasses.replace(found, default_layer=self._probe_default(found))

    def _probe_default(self, inventory: LayerInventory) -> str:
        """The inventory's choice if the predicted class's score has a gradient there, else the
        last norm layer that has one (a transformer block's input norm, as pytorch-grad-cam
        recommends), else the last spatial layer that has one; the inventory's choice if none has.

        A layer the head does not read gives an all-zero map on every image: a ViT's final norm
        reaches the head through the class token only, so its patch tokens get no gradient.
        """
        types = {info.name: info.type_name for info in inventory.layers}
        last_first = list(reversed(inventory.candidates))
        norms = [name for name in last_first if "Norm" in types[name]]
        names = list(dict.fromkeys([inventory.default_layer, *norms, *last_first]))
        shape = (1, *self.size, self.in_channels)
        if self.preprocess.layout != "nhwc":
            shape = (1, self.in_channels, *self.size)
        # Normalised images are roughly unit normal; a fixed seed keeps the choice repeatable.
        probe = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        probe = probe.to(self.device)
        result = self.run_pass(probe, names, TargetSpec("pred"))
        for name in names:
            gradient = result.gradients[name]
            if gradient is not None and bool(gradient.abs().amax() > 0):
                return name
        # Nothing moved on this one input (a dead untrained net): keep the heuristic's layer;
        # each flat map it gives is flagged.
        return inventory.default_layer

    @property
    def default_layer(self) -> str:
        """The profile's layer when it names one, else the inventory's automatic choice."""
        if self.cam.layer:
            get_module(self.model, self.cam.layer)
            return self.cam.layer
        if self.inventory.default_layer is None:
            raise InspectorError("no layer with a spatial output found; name one with --layer")
        return self.inventory.default_layer

    def resolve_layers(self, layers: str | Sequence[str] | None) -> list[str]:
        """Layer names to hook; None means the default layer."""
        if layers is None or layers == "" or layers == []:
            return [self.default_layer]
        names = [layers] if isinstance(layers, str) else list(layers)
        for name in names:
            get_module(self.model, name)
        return names

    # -- input ----------------------------------------------------------------------------------
    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize, scale and normalise images (HxW gray or HxWx3 RGB uint8) into a batch:
        (B, C, H, W), or (B, H, W, C) for a model whose input layout is "nhwc"."""
        height, width = self.size
        arrays = []
        for image in images:
            top, left, crop_h, crop_w = crop_box(image.shape[:2], self.preprocess)
            image = image[top : top + crop_h, left : left + crop_w]
            if self.in_channels == 1:
                pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            else:
                pixels = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
            if pixels.shape[:2] != (height, width):
                pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)
            arrays.append(pixels.reshape(height, width, -1))
        batch = torch.from_numpy(np.stack(arrays)).to(self.device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        batch = (batch - self._mean) / self._std
        if self.preprocess.layout == "nhwc":
            return batch.permute(0, 2, 3, 1).contiguous()
        return batch.contiguous(memory_format=self._memory_format)

    # -- the pass -------------------------------------------------------------------------------
    def _resolve_targets(
        self,
        logits: torch.Tensor,
        target: TargetSpec,
        ground_truth: Sequence[int | None] | None,
    ) -> tuple[torch.Tensor, list[str]]:
        head = self.head
        predicted = head.predicted(logits)
        notes = [""] * logits.shape[0]
        if target.kind == "pred":
            return predicted, notes
        if target.kind == "index":
            if target.index >= head.class_count(logits):
                raise InspectorError(
                    f"target class {target.index} is out of range: the model has "
                    f"{head.class_count(logits)} classes"
                )
            return torch.full_like(predicted, target.index), notes
        chosen = predicted.clone()
        truth = list(ground_truth or [None] * logits.shape[0])
        for i, gt in enumerate(truth):
            if gt is None:
                notes[i] = "no ground truth known; explained the predicted class"
            else:
                chosen[i] = int(gt)
        return chosen, notes

    def run_pass(
        self,
        batch: torch.Tensor,
        layers: Sequence[str],
        target: TargetSpec,
        ground_truth: Sequence[int | None] | None = None,
        need_gradients: bool = True,
        cancel: CancelCheck | None = None,
    ) -> _Pass:
        """One forward (and backward) pass with hooks on ``layers``; hooks always come off.

        Gradients are taken with ``torch.autograd.grad`` with respect to the hooked activations
        only. The hook hands a clone downstream, so a later in-place op (DenseNet's ReLU after
        ``features``) changes the clone and the captured activation stays what the layer output.
        Token (ViT) and channels-last (Swin) outputs are captured as they are and both the
        activation and its gradient are laid out as (B, C, h, w) after the pass.
        """
        captured: dict[str, torch.Tensor] = {}
        grids: dict[str, GridLayout] = {}

        def make_hook(name: str):
            def hook(_module: nn.Module, _inputs: object, output: object) -> torch.Tensor | None:
                if cancel is not None and cancel():
                    raise CamCancelled()
                grids[name] = self._grid(name, output, batch.shape[0])
                if not need_gradients:
                    captured[name] = output.detach().clone()
                    return None
                leaf = output if output.requires_grad else output.detach().requires_grad_(True)
                captured[name] = leaf
                return leaf.clone()

            return hook

        modules = [get_module(self.model, name) for name in layers]
        handles = []
        try:
            with frozen_model(self.model), torch.set_grad_enabled(need_gradients):
                for name, module in zip(layers, modules, strict=True):
                    handles.append(module.register_forward_hook(make_hook(name)))
                logits, output_note = select_logits(self.model(batch), self.output.logits)
                missing = [name for name in layers if name not in captured]
                if missing:
                    raise InspectorError(f"layer '{missing[0]}' is not used by the forward pass")
                target_index, notes = self._resolve_targets(logits.detach(), target, ground_truth)
                gradients: dict[str, torch.Tensor | None] = dict.fromkeys(layers)
                if need_gradients:
                    leaves = {name: captured[name] for name in layers}
                    gradients |= self._gradients(logits, target_index, leaves)
        finally:
            for handle in handles:
                handle.remove()
        activations = {name: grids[name].to_nchw(captured[name].detach()) for name in layers}
        gradients = {
            name: None if grad is None else grids[name].to_nchw(grad)
            for name, grad in gradients.items()
        }
        return _Pass(
            logits.detach(), target_index, activations, gradients, notes, output_note=output_note
        )

    def _gradients(
        self, logits: torch.Tensor, target_index: torch.Tensor, leaves: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The target scores' gradient at each hooked activation; zeros where it has none."""
        score = self.head.scores(logits, target_index).sum()
        grads = torch.autograd.grad(score, list(leaves.values()), allow_unused=True)
        return {
            name: grad if grad is not None else torch.zeros_like(leaf)
            for (name, leaf), grad in zip(leaves.items(), grads, strict=True)
        }

    def _grid(self, name: str, output: object, batch_size: int) -> GridLayout:
        """How a hooked layer's output lies on the image, or an error saying why it does not."""
        if not isinstance(output, torch.Tensor) or output.dim() not in (3, 4):
            raise InspectorError(
                f"layer '{name}' has no (channels, height, width) output; "
                "choose a convolutional layer or a transformer block's norm"
            )
        if output.shape[0] != batch_size:
            raise InspectorError(
                f"layer '{name}' folds windows or heads into the batch "
                f"({output.shape[0]} rows for {batch_size} images); choose a block's norm layer"
            )
        grid = find_grid(output.shape[1:], self.size, self.cam.reshape, self._prefix_hint)
        if grid is None and self.cam.reshape == "none":
            raise InspectorError(
                f"layer '{name}' gives tokens, and the profile's [cam] reshape = \"none\" takes "
                'only (channels, height, width) outputs; set reshape = "auto"'
            )
        if grid is None:
            height, width = self.size
            raise InspectorError(
                f"layer '{name}' gives {output.shape[1]} tokens that form no patch grid for the "
                f'{height}x{width} input; choose another layer or set reshape = "tokens" '
                "in the profile's [cam] table"
            )
        return grid

    # -- maps -----------------------------------------------------------------------------------
    def _raw_map(
        self,
        method: MethodSpec,
        result: _Pass,
        layer: str,
        batch: torch.Tensor,
        cancel: CancelCheck | None,
        progress: ProgressCallback | None,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        """The method's (B, h, w) map at ``layer`` after the ReLU, on the device."""
        inputs = MethodInputs(
            activation=result.activations[layer],
            gradient=result.gradients[layer],
            input_size=self.size,
            masked_scores=self._masked_scores(batch, result.target_index),
            max_batch=self.max_batch,
            cancel=cancel,
            progress=progress,
            eigen_smooth=eigen_smooth,
            guided_gradient=lambda: self._guided_gradient(batch, result.target_index),
        )
        return method.raw_map(inputs).clamp(min=0)

    def _guided_gradient(self, batch: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) guided backpropagation (Springenberg et al. 2015) of the target scores:
        the gradient at the input with only positive gradients let back through each ``nn.ReLU``
        module (a tensor hook on its output, so in-place ReLUs work); hooks always come off."""

        def guide(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda grad: grad.clamp(min=0))

        leaf = batch.detach().clone().requires_grad_(True)
        handles = [
            module.register_forward_hook(guide)
            for module in self.model.modules()
            if isinstance(module, nn.ReLU)
        ]
        if not handles:  # nothing to guide: the map would be plain gradient x Grad-CAM
            raise InspectorError(
                "Guided Grad-CAM guides the gradient through the model's nn.ReLU modules and this "
                "model has none (GELU or functional activations); choose another method"
            )
        try:
            with frozen_model(self.model), torch.enable_grad():
                logits, _ = select_logits(self.model(leaf), self.output.logits)
                score = self.head.scores(logits, target_index).sum()
                (gradient,) = torch.autograd.grad(score, leaf)
        finally:
            for handle in handles:
                handle.remove()
        return gradient.permute(0, 3, 1, 2) if self.preprocess.layout == "nhwc" else gradient

    def _augmented_maps(
        self,
        method: MethodSpec,
        result: _Pass,
        names: Sequence[str],
        batch: torch.Tensor,
        eigen_smooth: bool,
        cancel: CancelCheck | None,
    ) -> dict[str, torch.Tensor]:
        """pytorch-grad-cam's aug_smooth: per layer, the mean of the six augmented inputs' maps,
        each min-max normalised and flipped back; every pass explains the un-augmented target
        (five passes more: the un-augmented one is ``result``)."""
        fixed = [int(i) for i in result.target_index]
        width_axis = 2 if self.preprocess.layout == "nhwc" else 3
        maps: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        for flip, factor in AUGMENTATIONS:
            augmented = batch.flip(width_axis) * factor if flip else batch * factor
            if not flip and factor == 1.0:  # the un-augmented pass is the one already made
                augmented, passed = batch, result
            else:
                passed = self.run_pass(
                    augmented, names, TargetSpec("gt"), fixed, method.needs_gradients, cancel
                )
            for name in names:
                raw = self._raw_map(method, passed, name, augmented, cancel, None, eigen_smooth)
                norm = normalize_maps(raw.float())
                maps[name].append(norm.flip(-1) if flip else norm)
        return {name: torch.stack(found).mean(dim=0) for name, found in maps.items()}

    def _masked_scores(self, batch: torch.Tensor, target_index: torch.Tensor) -> MaskedScores:
        """Target scores of one image of ``batch`` times each of n masks, the model left as found
        (what Score-CAM weights its channels by)."""

        def scores(image: int, masks: torch.Tensor) -> torch.Tensor:
            # Masks broadcast over the channel axis, wherever the layout puts it.
            masks = masks[:, :, :, None] if self.preprocess.layout == "nhwc" else masks[:, None]
            with frozen_model(self.model), torch.no_grad():
                output = self.model(batch[image : image + 1] * masks)
            logits, _ = select_logits(output, self.output.logits)
            return self.head.scores(logits, target_index[image].expand(logits.shape[0]))

        return scores

    def _finish(
        self,
        raw: torch.Tensor,
        result: _Pass,
        sizes: Sequence[tuple[int, int]],
        method: str,
        layer: str,
        blur_sigma: float,
    ) -> list[CamResult]:
        """Normalise on the device, copy to the CPU once, upsample each map to its image."""
        probs = result.probabilities
        if probs is None:
            probs = self.head.probabilities(result.logits)
        _check_finite(probs, raw)
        raw_np = raw.float().cpu().numpy()
        norm_np = normalize_maps(raw.float(), self.cam.normalize).cpu().numpy()
        k = min(TOP_K, probs.shape[1])
        top_p, top_i = (t.cpu().numpy() for t in probs.topk(k, dim=1))
        targets = result.target_index.cpu().numpy()
        out = []
        for i, size in enumerate(sizes):
            top = tuple(
                Prediction(int(j), self.class_name(int(j)), float(p))
                for j, p in zip(top_i[i], top_p[i], strict=True)
            )
            out.append(
                CamResult(
                    method=method,
                    layer=layer,
                    target_index=int(targets[i]),
                    target_name=self.class_name(int(targets[i])),
                    top_k=top,
                    raw=raw_np[i],
                    cam=self._laid_back(norm_np[i], size, blur_sigma),
                    note=result.notes[i],
                    head=self.head.kind,
                    output_note=result.output_note,
                    warning=self._flat_warning(raw_np[i], layer),
                )
            )
        return out

    def _laid_back(self, map01: np.ndarray, size: tuple[int, int], blur_sigma: float) -> np.ndarray:
        """The map at the image's size, on the region the model saw (all of it, uncropped)."""
        top, left, height, width = crop_box(size, self.preprocess)
        if (height, width) == tuple(size):
            return upsample_map(map01, size, blur_sigma, self.cam.normalize)
        out = np.zeros(size, np.float32)
        placed = upsample_map(map01, (height, width), blur_sigma, self.cam.normalize)
        out[top : top + height, left : left + width] = placed
        return out

    def _flat_warning(self, raw: np.ndarray, layer: str) -> str:
        """One line when a map shows nothing (no positive value, or one value everywhere)."""
        high, low = float(raw.max()), float(raw.min())
        if high <= 0:
            reason = "no positive value"
        elif high - low <= FLAT_TOLERANCE * high:
            reason = "the same value everywhere"
        else:
            return ""
        return f"flat map at '{layer}' ({reason}); {self._layer_hint(layer)}"

    def _layer_hint(self, layer: str) -> str:
        try:
            automatic = self.inventory.default_layer
        except InspectorError:
            automatic = None
        if automatic is not None and automatic != layer:
            return f"try layer '{automatic}'"
        return "try another layer or method"

    def _in_chunks(
        self,
        run: Callable[..., list],
        images: Sequence[np.ndarray],
        ground_truth: Sequence[int | None] | None,
        progress: ProgressCallback | None,
        **kwargs: object,
    ) -> list:
        """``run`` on slices of at most ``max_batch`` images (ONNX exports with a fixed batch).

        Eval-mode images do not affect each other, so the results equal one big batch's.
        """
        step = self.max_batch
        starts = range(0, len(images), step)
        out: list = []
        for number, start in enumerate(starts):
            part = slice(start, start + step)
            truth = None if ground_truth is None else list(ground_truth)[part]
            if progress is not None:
                kwargs["progress"] = _chunk_progress(progress, number, len(starts))
            out += run(list(images)[part], ground_truth=truth, **kwargs)
        return out

    def target_probabilities(
        self, inputs: torch.Tensor, target_index: torch.Tensor
    ) -> torch.Tensor:
        """(N,) the head's probability of each row's target class for (N, C, H, W) normalised
        inputs, in passes of at most ``SCORE_BATCH`` images, the model left as found."""
        step = min(SCORE_BATCH, self.max_batch or SCORE_BATCH)
        out = []
        with frozen_model(self.model), torch.no_grad():
            for start in range(0, inputs.shape[0], step):
                part = inputs[start : start + step]
                if self.preprocess.layout == "nhwc":
                    part = part.permute(0, 2, 3, 1).contiguous()
                else:
                    part = part.contiguous(memory_format=self._memory_format)
                logits, _ = select_logits(self.model(part), self.output.logits)
                probs = self.head.probabilities(logits)
                out.append(probs.gather(1, target_index[start : start + step, None])[:, 0])
        return torch.cat(out)

    def prepare_nchw(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """``prepare`` laid out as (B, C, H, W) whatever the model's input layout."""
        batch = self.prepare(images)
        return batch.permute(0, 3, 1, 2) if self.preprocess.layout == "nhwc" else batch

    def class_name(self, index: int) -> str:
        return self.classes[index] if 0 <= index < len(self.classes) else f"class_{index}"

    # -- public entry points --------------------------------------------------------------------
    def explain_layers(
        self,
        images: Sequence[np.ndarray],
        method: str = "gradcam",
        layers: str | Sequence[str] | None = None,
        target: TargetSpec | str | int | None = None,
        ground_truth: Sequence[int | None] | None = None,
        blur_sigma: float = 0.0,
        cancel: CancelCheck | None = None,
        progress: ProgressCallback | None = None,
        smoothing: Smoothing | None = None,
    ) -> list[dict[str, CamResult]]:
        """CAMs of a batch of images for several layers, all from one model pass (six with
        ``smoothing.aug``); ``smoothing`` None: the profile's."""
        spec = get_method(method)
        if self.max_batch is not None and len(images) > self.max_batch:
            return self._in_chunks(
                self.explain_layers,
                images,
                ground_truth,
                progress,
                method=method,
                layers=layers,
                target=target,
                blur_sigma=blur_sigma,
                cancel=cancel,
                smoothing=smoothing,
            )
        smooth = smoothing if smoothing is not None else self.cam.smoothing
        target = target if isinstance(target, TargetSpec) else parse_target(target, self.classes)
        names = self.resolve_layers(layers)
        batch = self.prepare(images)
        result = self.run_pass(batch, names, target, ground_truth, spec.needs_gradients, cancel)
        if smooth.aug:
            raws = self._augmented_maps(spec, result, names, batch, smooth.eigen, cancel)
        else:
            raws = {
                name: self._raw_map(spec, result, name, batch, cancel, progress, smooth.eigen)
                for name in names
            }
        sizes = [image.shape[:2] for image in images]
        per_layer = {
            name: self._finish(raws[name], result, sizes, method, name, blur_sigma)
            for name in names
        }
        return [{name: per_layer[name][i] for name in names} for i in range(len(images))]

    def explain(
        self,
        images: Sequence[np.ndarray],
        method: str = "gradcam",
        layer: str | None = None,
        **kwargs: object,
    ) -> list[CamResult]:
        """CAMs of a batch of images at one layer (the default layer when None)."""
        name = self.resolve_layers(layer)[0]
        return [r[name] for r in self.explain_layers(images, method, [name], **kwargs)]

    def capture(
        self,
        images: Sequence[np.ndarray],
        layers: str | Sequence[str] | None = None,
        target: TargetSpec | str | int | None = None,
        ground_truth: Sequence[int | None] | None = None,
        cancel: CancelCheck | None = None,
    ) -> list[Capture]:
        """One pass kept on the CPU, so any method can be drawn later without the model."""
        if self.max_batch is not None and len(images) > self.max_batch:
            return self._in_chunks(
                self.capture,
                images,
                ground_truth,
                None,
                layers=layers,
                target=target,
                cancel=cancel,
            )
        spec = target if isinstance(target, TargetSpec) else parse_target(target, self.classes)
        names = self.resolve_layers(layers)
        batch = self.prepare(images)
        result = self.run_pass(batch, names, spec, ground_truth, True, cancel)
        probs = self.head.probabilities(result.logits).cpu().numpy()
        acts = {n: result.activations[n].float().cpu().numpy() for n in names}
        grads = {n: result.gradients[n].float().cpu().numpy() for n in names}
        inputs = batch.cpu().numpy()
        return [
            Capture(
                image_size=tuple(image.shape[:2]),
                probabilities=probs[i],
                target_index=int(result.target_index[i]),
                layers={n: LayerCapture(acts[n][i], grads[n][i]) for n in names},
                model_input=inputs[i],
                note=result.notes[i],
                output_note=result.output_note,
            )
            for i, image in enumerate(images)
        ]

    def cam_from_capture(
        self,
        capture: Capture,
        method: str,
        layer: str | None = None,
        blur_sigma: float = 0.0,
        cancel: CancelCheck | None = None,
        progress: ProgressCallback | None = None,
        eigen_smooth: bool = False,
    ) -> CamResult:
        """Draw a method's map from a stored capture; only Score-CAM and Guided Grad-CAM run
        the model again (aug_smooth needs passes of its own: ``explain`` does it)."""
        name = layer if layer is not None else next(iter(capture.layers))
        if name not in capture.layers:
            raise InspectorError(f"layer '{name}' was not captured for this image")
        stored = capture.layers[name]
        activation = torch.from_numpy(stored.activation[None]).to(self.device)
        gradient = torch.from_numpy(stored.gradient[None]).to(self.device)
        # The stored probabilities are what the head gave; the logits are not needed again.
        probs = torch.from_numpy(capture.probabilities[None]).to(self.device)
        target_index = torch.tensor([capture.target_index], device=self.device)
        result = _Pass(
            logits=probs,
            target_index=target_index,
            activations={name: activation},
            gradients={name: gradient},
            notes=[capture.note],
            probabilities=probs,
            output_note=capture.output_note,
        )
        batch = torch.from_numpy(capture.model_input[None]).to(self.device)
        spec = get_method(method)
        raw = self._raw_map(spec, result, name, batch, cancel, progress, eigen_smooth)
        return self._finish(raw, result, [capture.image_size], method, name, blur_sigma)[0]
