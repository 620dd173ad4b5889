"""timm classifiers by name ("timm:<name>"), given a state_dict like torchvision's."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from engine.backends.base import StateDictBackend
from engine.errors import InspectorError, first_line

if TYPE_CHECKING:
    import torch
    from torch import nn

PREFIX = "timm:"


class TimmBackend(StateDictBackend):
    """timm.create_model(<name>, pretrained=False): nothing is downloaded.

    The name is checked when the model is built, not when a profile is read: timm is optional.
    """

    name = "timm"
    syntax = "timm:<name>"
    extra = "timm"
    packages = ("timm",)
    choices = ("timm:resnet50", "timm:legacy_xception", "timm:vit_small_patch16_224")

    def matches(self, architecture: str) -> bool:
        return architecture.startswith(PREFIX)

    def build(
        self,
        architecture: str,
        num_classes: int,
        *,
        meta: bool = False,
        init: bool = True,
        in_chans: int = 3,
    ) -> nn.Module:
        """With meta=True build errors propagate as they are, so the caller can fall back to a
        real build (some timm models read tensor values while built). init is ignored."""
        name = architecture[len(PREFIX) :].strip()
        timm = self.require("timm", PREFIX + name)
        _check_name(timm, name)
        kwargs: dict[str, Any] = {
            "pretrained": False,
            "num_classes": num_classes,
            "in_chans": in_chans,
        }
        if meta:
            import torch

            with torch.device("meta"):
                return timm.create_model(name, **kwargs)
        try:
            return timm.create_model(name, **kwargs)
        except (
            Exception
        ) as exc:  # timm raises assorted errors for unsupported argument combinations
            raise InspectorError(f"cannot build timm model '{name}': {first_line(exc)}") from exc

    def input_channels_key(self, model_state: Mapping[str, torch.Tensor]) -> str | None:
        # The first convolution weight (4-D, in registration order) fixes timm's in_chans.
        return next(
            (k for k, v in model_state.items() if k.endswith(".weight") and v.ndim == 4), None
        )


def _check_name(timm: ModuleType, name: str) -> None:
    if name.startswith("hf-hub:") or name.startswith("hf_hub:"):
        raise InspectorError(
            f"timm model '{name}' would be downloaded from the Hugging Face hub; use the "
            "architecture's name (e.g. timm:resnet50) and your own weights file"
        )
    if name and timm.is_model(name):
        return
    close = difflib.get_close_matches(name.lower(), timm.list_models(), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
    raise InspectorError(f"'{name}' is not a timm model ({hint})")
