"""Small models that used to give silent wrong answers: maps nobody reads, NaN scores."""

from __future__ import annotations

import torch
from torch import nn

from tests.conftest import TinyNet


class _Mix(nn.Module):
    """Self-attention over the tokens, so the class token reads every patch."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.attn(tokens, tokens, tokens, need_weights=False)[0]


class ClassTokenNet(nn.Module):
    """A ViT in miniature: 8x8 patch tokens after a class token; the head reads the class
    token only, so the final norm's patch tokens get no gradient (as an ONNX ViT's do)."""

    def __init__(self, classes: int, dim: int = 8) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim))
        self.block = _Mix(dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), patches], dim=1)
        return self.head(self.norm(self.block(tokens))[:, 0])


class NanForBrightNet(TinyNet):
    """TinyNet whose scores are NaN for an image brighter than the normalisation mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        bright = x.flatten(1).mean(dim=1) > 0
        return torch.where(bright[:, None], torch.full_like(logits, float("nan")), logits)
