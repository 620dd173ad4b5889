"""Class activation maps: hooks on target layers, one model pass, every method from it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import CamCancelled, InspectorError
from engine.layers import LayerInventory, get_module, layer_inventory
from engine.methods import ACTIVATION_METHODS, ALL_METHODS, GRADIENT_METHODS
from engine.state import frozen_model

if TYPE_CHECKING:
    from engine.profile import ModelProfile

CancelCheck = Callable[[], bool]
ProgressCallback = Callable[[int, int], None]
TOP_K = 5


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

    def describe(self, classes: Sequence[str]) -> str:
        return classes[self.index] if self.kind == "index" else self.kind


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
    note: str = ""

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


def normalize_maps(raw: torch.Tensor) -> torch.Tensor:
    """Per-map min-max to [0, 1] with an epsilon, so a flat map stays flat (zeros), never NaN."""
    flat = raw.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    shifted = raw - low
    high = shifted.flatten(1).max(dim=1).values[:, None, None]
    return shifted / (high + 1e-7)


def upsample_map(map01: np.ndarray, size: tuple[int, int], blur_sigma: float = 0.0) -> np.ndarray:
    """Bilinear upsampling of a normalised map to (H, W), optional Gaussian blur, min-max again."""
    height, width = size
    out = cv2.resize(map01.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    if blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    # Interpolation rarely lands on the layer-resolution peak: normalise again at full size.
    out -= out.min()
    out /= out.max() + 1e-7
    return out


def _as_logits(output: object) -> torch.Tensor:
    """The logits tensor of a model output (plain tensor, tuple, dict or object with .logits)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        for key in ("logits", "out", "output"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise InspectorError(f"the model returned a {type(output).__name__}, not a logits tensor")


def _input_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


@dataclass
class _Pass:
    """Tensors of one forward/backward pass, still on the device."""

    logits: torch.Tensor
    target_index: torch.Tensor
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor | None]
    notes: list[str] = field(default_factory=list)


class CamEngine:
    """A model on a device with its classes and preprocessing; computes CAMs for images."""

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str],
        size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "auto",
        layer: str | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.preferred_layer = layer
        self.weights_sha256: str | None = None  # set by from_profile: what the session records
        # oneDNN's CPU convolutions run faster on channels-last tensors (~25% for a ResNet50);
        # the layout changes how weights are stored, not their values.
        self._memory_format = (
            torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        )
        self.model = model.to(self.device, memory_format=self._memory_format)
        self.classes = tuple(classes)
        self.size = (int(size[0]), int(size[1]))
        self.in_channels = _input_channels(model)
        stats = self.in_channels if self.in_channels in (1, 3) else len(mean)
        self._mean = torch.tensor(list(mean)[:stats], device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(list(std)[:stats], device=self.device).view(1, -1, 1, 1)
        self._inventory: LayerInventory | None = None

    @classmethod
    def from_profile(
        cls, profile: ModelProfile, device: str = "auto", trust_pickle: bool = False
    ) -> CamEngine:
        """Load the profile's model and weights (see engine.checkpoint.load_model)."""
        from engine.checkpoint import load_model

        loaded = load_model(profile, trust_pickle=trust_pickle)
        pre = profile.preprocess
        engine = cls(
            loaded.model, loaded.classes, pre.size, pre.mean, pre.std, device, profile.cam.layer
        )
        engine.weights_sha256 = loaded.weights_sha256
        return engine

    # -- layers ---------------------------------------------------------------------------------
    @property
    def inventory(self) -> LayerInventory:
        if self._inventory is None:
            self._inventory = layer_inventory(self.model, self.size, self.in_channels)
        return self._inventory

    @property
    def default_layer(self) -> str:
        """The profile's layer when it names one, else the inventory's automatic choice."""
        if self.preferred_layer:
            get_module(self.model, self.preferred_layer)
            return self.preferred_layer
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
        """Resize, scale and normalise images (HxW gray or HxWx3 RGB uint8) into a batch."""
        height, width = self.size
        arrays = []
        for image in images:
            if self.in_channels == 1:
                pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            else:
                pixels = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
            if pixels.shape[:2] != (height, width):
                pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)
            arrays.append(pixels.reshape(height, width, -1))
        batch = torch.from_numpy(np.stack(arrays)).to(self.device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        return ((batch - self._mean) / self._std).contiguous(memory_format=self._memory_format)

    # -- the pass -------------------------------------------------------------------------------
    def _resolve_targets(
        self,
        logits: torch.Tensor,
        target: TargetSpec,
        ground_truth: Sequence[int | None] | None,
    ) -> tuple[torch.Tensor, list[str]]:
        predicted = logits.argmax(dim=1)
        notes = [""] * logits.shape[0]
        if target.kind == "pred":
            return predicted, notes
        if target.kind == "index":
            if target.index >= logits.shape[1]:
                raise InspectorError(
                    f"target class {target.index} is out of range: the model has "
                    f"{logits.shape[1]} outputs"
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
        """
        captured: dict[str, torch.Tensor] = {}

        def make_hook(name: str):
            def hook(_module: nn.Module, _inputs: object, output: object) -> torch.Tensor | None:
                if cancel is not None and cancel():
                    raise CamCancelled()
                if not isinstance(output, torch.Tensor) or output.dim() != 4:
                    raise InspectorError(
                        f"layer '{name}' has no (channels, height, width) output; "
                        "choose a convolutional layer"
                    )
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
                logits = _as_logits(self.model(batch))
                missing = [name for name in layers if name not in captured]
                if missing:
                    raise InspectorError(f"layer '{missing[0]}' is not used by the forward pass")
                target_index, notes = self._resolve_targets(logits.detach(), target, ground_truth)
                gradients: dict[str, torch.Tensor | None] = dict.fromkeys(layers)
                if need_gradients:
                    score = logits.gather(1, target_index[:, None]).sum()
                    grads = torch.autograd.grad(
                        score, [captured[name] for name in layers], allow_unused=True
                    )
                    for name, grad in zip(layers, grads, strict=True):
                        gradients[name] = (
                            grad if grad is not None else torch.zeros_like(captured[name])
                        )
        finally:
            for handle in handles:
                handle.remove()
        activations = {name: captured[name].detach() for name in layers}
        return _Pass(logits.detach(), target_index, activations, gradients, notes)

    # -- maps -----------------------------------------------------------------------------------
    def _raw_maps(
        self,
        method: str,
        result: _Pass,
        layer: str,
        batch: torch.Tensor,
        cancel: CancelCheck | None,
        progress: ProgressCallback | None,
    ) -> torch.Tensor:
        activation = result.activations[layer]
        if method in GRADIENT_METHODS:
            raw = GRADIENT_METHODS[method](activation, result.gradients[layer])
        elif method in ACTIVATION_METHODS:
            raw = ACTIVATION_METHODS[method](activation, None)
        elif method == "scorecam":
            raw = self.score_cam(batch, activation, result.target_index, cancel, progress)
        else:
            raise InspectorError(f"unknown method '{method}': use one of {', '.join(ALL_METHODS)}")
        return raw.clamp(min=0)

    def score_cam(
        self,
        batch: torch.Tensor,
        activation: torch.Tensor,
        target_index: torch.Tensor,
        cancel: CancelCheck | None = None,
        progress: ProgressCallback | None = None,
        mask_batch: int = 32,
    ) -> torch.Tensor:
        """Score-CAM (Wang et al. 2020): each channel, upsampled and normalised, masks the input;
        the softmax over channels of the masked inputs' target logits weights the channels.

        Masks are made and run ``mask_batch`` channels at a time so memory stays bounded.
        """
        images, channels = activation.shape[:2]
        steps = images * ((channels + mask_batch - 1) // mask_batch)
        done = 0
        weights = torch.empty(images, channels, device=activation.device)
        with frozen_model(self.model), torch.no_grad():
            for b in range(images):
                scores = []
                for start in range(0, channels, mask_batch):
                    if cancel is not None and cancel():
                        raise CamCancelled()
                    chunk = activation[b : b + 1, start : start + mask_batch]
                    masks = F.interpolate(
                        chunk, size=batch.shape[-2:], mode="bilinear", align_corners=True
                    )[0]
                    low = masks.flatten(1).min(dim=1).values[:, None, None]
                    high = masks.flatten(1).max(dim=1).values[:, None, None]
                    masks = (masks - low) / (high - low + 1e-8)
                    logits = _as_logits(self.model(batch[b : b + 1] * masks[:, None]))
                    scores.append(logits[:, target_index[b]])
                    done += 1
                    if progress is not None:
                        progress(done, steps)
                weights[b] = torch.softmax(torch.cat(scores), dim=0)
        return torch.einsum("bc,bchw->bhw", weights, activation)

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
        raw_np = raw.float().cpu().numpy()
        norm_np = normalize_maps(raw.float()).cpu().numpy()
        probs = torch.softmax(result.logits.float(), dim=1)
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
                    cam=upsample_map(norm_np[i], size, blur_sigma),
                    note=result.notes[i],
                )
            )
        return out

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
    ) -> list[dict[str, CamResult]]:
        """CAMs of a batch of images for several layers, all from one model pass."""
        if method not in ALL_METHODS:
            raise InspectorError(f"unknown method '{method}': use one of {', '.join(ALL_METHODS)}")
        spec = target if isinstance(target, TargetSpec) else parse_target(target, self.classes)
        names = self.resolve_layers(layers)
        batch = self.prepare(images)
        result = self.run_pass(batch, names, spec, ground_truth, method in GRADIENT_METHODS, cancel)
        sizes = [image.shape[:2] for image in images]
        per_layer = {
            name: self._finish(
                self._raw_maps(method, result, name, batch, cancel, progress),
                result,
                sizes,
                method,
                name,
                blur_sigma,
            )
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
        spec = target if isinstance(target, TargetSpec) else parse_target(target, self.classes)
        names = self.resolve_layers(layers)
        batch = self.prepare(images)
        result = self.run_pass(batch, names, spec, ground_truth, True, cancel)
        probs = torch.softmax(result.logits.float(), dim=1).cpu().numpy()
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
    ) -> CamResult:
        """Draw a method's map from a stored capture; only Score-CAM runs the model again."""
        name = layer if layer is not None else next(iter(capture.layers))
        if name not in capture.layers:
            raise InspectorError(f"layer '{name}' was not captured for this image")
        stored = capture.layers[name]
        activation = torch.from_numpy(stored.activation[None]).to(self.device)
        gradient = torch.from_numpy(stored.gradient[None]).to(self.device)
        logits = torch.from_numpy(np.log(capture.probabilities[None] + 1e-30)).to(self.device)
        target_index = torch.tensor([capture.target_index], device=self.device)
        result = _Pass(logits, target_index, {name: activation}, {name: gradient}, [capture.note])
        batch = torch.from_numpy(capture.model_input[None]).to(self.device)
        raw = self._raw_maps(method, result, name, batch, cancel, progress)
        return self._finish(raw, result, [capture.image_size], method, name, blur_sigma)[0]
