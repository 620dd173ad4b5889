"""The torch side of the Hugging Face backend: a model whose output is its logits tensor."""

from __future__ import annotations

import torch
from torch import nn


class HfLogits(nn.Module):
    """A transformers classifier returning ``.logits``, as pytorch-grad-cam's documentation
    wraps one; its layers are named ``model.<the transformers name>``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits
