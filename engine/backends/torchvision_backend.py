"""torchvision classifiers by name: the kind a bare architecture name means."""

from __future__ import annotations

import contextlib
import difflib
from functools import cache
from typing import TYPE_CHECKING, Any

from engine.backends.base import StateDictBackend
from engine.errors import InspectorError

if TYPE_CHECKING:
    from torch import nn


@cache
def classifier_names() -> tuple[str, ...]:
    """torchvision's image-classification architectures (what get_model can build here)."""
    import torchvision.models  # deferred: importing torchvision costs about a second

    return tuple(torchvision.models.list_models(module=torchvision.models))


class TorchvisionBackend(StateDictBackend):
    """A torchvision.models classifier; any name no other backend claims is taken for one."""

    name = "torchvision"
    syntax = "a torchvision classifier name"
    packages = ("torchvision",)
    choices = (
        "resnet18",
        "resnet34",
        "resnet50",
        "densenet121",
        "efficientnet_b0",
        "mobilenet_v3_large",
        "convnext_tiny",
        "vgg16",
        "vit_b_16",
        "swin_t",
    )

    def matches(self, architecture: str) -> bool:
        return True  # the registry's last resort, so a misspelt name gets torchvision's hint

    def problem(self, architecture: str) -> str | None:
        if architecture in classifier_names():
            return None
        import torchvision.models

        if architecture in torchvision.models.list_models():
            return f"'{architecture}' is not an image classifier"
        hint = difflib.get_close_matches(architecture.lower(), classifier_names(), n=1)
        extra = f"did you mean '{hint[0]}'?" if hint else "see torchvision.models.list_models()"
        return f"'{architecture}' is not a torchvision classifier ({extra})"

    def build(
        self,
        architecture: str,
        num_classes: int,
        *,
        meta: bool = False,
        init: bool = True,
        in_chans: int = 3,
    ) -> nn.Module:
        # in_chans is ignored: torchvision builders take 3-channel input only.
        import torch
        import torchvision.models

        # Inception-style nets are built without their auxiliary head: Grad-CAM needs one output.
        # Builders that do not take one of these kwargs get it removed and are called again.
        extra: dict[str, Any] = {"aux_logits": False, "init_weights": init and not meta}
        while True:
            try:
                with torch.device("meta") if meta else contextlib.nullcontext():
                    return torchvision.models.get_model(
                        architecture, weights=None, num_classes=num_classes, **extra
                    )
            except TypeError as exc:
                rejected = [key for key in extra if key in str(exc)]
                if not rejected:
                    raise
                del extra[rejected[0]]
            except ValueError as exc:
                raise InspectorError(f"cannot build architecture '{architecture}': {exc}") from exc
