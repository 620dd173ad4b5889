"""Hugging Face image classifiers ("hf"): a save_pretrained folder, read offline by transformers.

What the folder already says (classes in config.json's id2label; size, mean, std and crop in
preprocessor_config.json) becomes the profile's defaults, read as JSON without transformers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backends.base import Backend
from engine.errors import InspectorError, TrustNeeded, first_line

if TYPE_CHECKING:
    from torch import nn

    from engine.checkpoint import LoadedModel
    from engine.profile import ModelProfile

ARCHITECTURE = "hf"
CONFIG = "config.json"
PROCESSOR = "preprocessor_config.json"
# The weights files save_pretrained writes, in the order transformers prefers them.
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
# What HF processors assume when a processor config leaves them out.
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]
# ConvNeXt's processor crops only below this shortest edge (ConvNextImageProcessor.resize).
_CROP_BELOW = 384


def is_hf_folder(path: Path) -> bool:
    """Whether path is a folder that save_pretrained wrote (a config.json beside weights)."""
    return path.is_dir() and (path / CONFIG).is_file()


class HfBackend(Backend):
    """A transformers AutoModelForImageClassification folder; the map uses its ``.logits``."""

    name = "hf"
    syntax = "hf (a Hugging Face folder)"
    extra = "hf"
    packages = ("transformers",)
    choices = (ARCHITECTURE,)

    def matches(self, architecture: str) -> bool:
        return architecture == ARCHITECTURE

    def profile_defaults(self, weights: Path | None) -> dict[str, Any]:
        if weights is None or not is_hf_folder(weights):
            return {}
        return folder_defaults(weights)

    def load(self, profile: ModelProfile, trust_pickle: bool) -> LoadedModel:
        from engine.backends.hf_model import HfLogits  # imports torch
        from engine.checkpoint import LoadedModel, resolve_classes

        folder = _folder(profile.weights)
        transformers = self.require("transformers", ARCHITECTURE)
        model = HfLogits(_from_pretrained(transformers, folder, profile.trust_code))
        count = int(model.model.config.num_labels)
        classes, notes = resolve_classes(profile, count, "config.json", "the model's config")
        said = [f"Hugging Face {type(model.model).__name__} from '{folder.name}'"]
        if not (folder / PROCESSOR).is_file():
            said.append(f"no {PROCESSOR}: size from config.json, mean and std the profile's")
        return LoadedModel(
            model.to("cpu").float().eval(),
            classes,
            weights_digest(folder),
            (*said, *notes),
        )


def weights_digest(folder: Path) -> str | None:
    """SHA-256 of the folder's weights file; of its shards' digests when save_pretrained split
    them (model-00001-of-00002.safetensors ...); None when it holds neither."""
    from engine.checkpoint import sha256_of

    single = next((folder / n for n in WEIGHTS_FILES if (folder / n).is_file()), None)
    if single is not None:
        return sha256_of(single)
    indexes = [folder / f"{name}.index.json" for name in WEIGHTS_FILES]
    index = next((path for path in indexes if path.is_file()), None)
    if index is None:
        return None
    shards = sorted(set(_json(index).get("weight_map", {}).values()))
    combined = "".join(sha256_of(folder / shard) for shard in shards)
    return hashlib.sha256(combined.encode("ascii")).hexdigest()


def _folder(weights: Path | None) -> Path:
    if weights is None:
        raise InspectorError(
            'architecture "hf" needs weights = "<the folder save_pretrained wrote>"'
        )
    if not weights.exists():
        raise InspectorError(f"Hugging Face folder not found: {weights}")
    if not is_hf_folder(weights):
        raise InspectorError(
            f"'{weights.name}' is not a Hugging Face save_pretrained folder (no {CONFIG})"
        )
    return weights


def _from_pretrained(transformers: Any, folder: Path, trust_code: bool) -> nn.Module:
    # Offline always: a folder that names hub files it does not hold fails here, never
    # downloads. Remote code (a custom architecture) runs only when the user trusts code.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        return transformers.AutoModelForImageClassification.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=trust_code
        )
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise TrustNeeded(
                f"'{folder.name}' needs its own Python code to build the model; run it only "
                "if you trust its source: set trust_code = true in the profile or pass "
                "--trust-code",
                "code",
            ) from exc
        raise InspectorError(
            f"'{folder.name}' is not a Hugging Face image classifier: {first_line(exc)}"
        ) from exc
    except (OSError, KeyError, RuntimeError) as exc:
        raise InspectorError(
            f"cannot load the Hugging Face folder '{folder.name}': {first_line(exc)}"
        ) from exc


# --- the folder's own settings, as profile defaults ---------------------------------------


def folder_defaults(folder: Path) -> dict[str, Any]:
    """classes and [preprocess] values that config.json and preprocessor_config.json hold."""
    config = _json(folder / CONFIG)
    out: dict[str, Any] = {}
    classes = _id2label(config)
    if classes:
        out["classes"] = classes
    if config.get("problem_type") == "multi_label_classification":
        # One sigmoid per label, as transformers trains it: a softmax would misstate them all.
        out["output"] = {"activation": "sigmoid"}
    processor = _json(folder / PROCESSOR) if (folder / PROCESSOR).is_file() else None
    if processor is None:
        side = config.get("image_size")
        if isinstance(side, int):
            out["preprocess"] = {"size": [side, side]}
        return out
    out["preprocess"] = processor_preprocess(processor)
    return out


def processor_preprocess(processor: Mapping[str, Any]) -> dict[str, Any]:
    """A [preprocess] table doing what an image processor config does, in the engine's terms.

    The engine scales pixels to [0, 1] then normalises; a processor that rescales by another
    factor, or not at all, is folded into mean and std.
    """
    mean = list(processor.get("image_mean", _IMAGENET_MEAN))
    std = list(processor.get("image_std", _IMAGENET_STD))
    if not processor.get("do_normalize", True):
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    factor = float(processor.get("rescale_factor", 1 / 255))
    scale = factor * 255 if processor.get("do_rescale", True) else 255.0
    table: dict[str, Any] = {
        "mean": [float(m) / scale for m in mean],
        "std": [float(s) / scale for s in std],
    }
    return table | _geometry(processor)


def _geometry(processor: Mapping[str, Any]) -> dict[str, Any]:
    """size, resize and crop: what the processor's resize and centre crop do to an image."""
    size = processor.get("size", 224)
    if isinstance(size, int):
        size = {"height": size, "width": size}
    crop = processor.get("crop_size")
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    do_crop = bool(processor.get("do_center_crop", False)) and isinstance(crop, Mapping)
    if "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        if "crop_pct" in processor and processor["crop_pct"] is not None:
            # ConvNeXt: the edge / crop_pct, then a centre crop of edge x edge.
            if edge >= _CROP_BELOW:
                return {"size": [edge, edge]}
            return {"size": [edge, edge], "resize": "shortest", "crop": processor["crop_pct"]}
        if do_crop:  # BiT, DINOv2: the edge, then the crop_size centre
            side = [int(crop["height"]), int(crop["width"])]
            return {"size": side, "resize": "shortest", "crop": side[0] / edge}
        return {"size": [edge, edge]}
    resized = [int(size["height"]), int(size["width"])]
    if do_crop:  # DeiT: stretched to 256 x 256, then the 224 x 224 centre
        side = [int(crop["height"]), int(crop["width"])]
        return {"size": side, "crop": side[0] / resized[0]}
    return {"size": resized}


def _id2label(config: Mapping[str, Any]) -> list[str]:
    labels = config.get("id2label")
    if not isinstance(labels, Mapping) or not labels:
        return []
    try:
        ordered = sorted(labels.items(), key=lambda item: int(item[0]))
    except ValueError:
        return []
    names = [str(name) for _, name in ordered]
    return names if len(set(names)) == len(names) else []


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InspectorError(f"cannot read '{path}': {first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise InspectorError(f"'{path}' is not a JSON object")
    return data
