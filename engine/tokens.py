"""Layer outputs laid on the image grid: NCHW maps, NHWC maps and transformer token sequences.

A CAM needs a (B, C, h, w) activation. CNNs give that directly; a Swin block gives (B, h, w, C)
and a ViT block (B, k + h*w, C), where the first k tokens (class, distillation, register tokens)
have no place on the image. ``find_grid`` works out from a layer's output shape and the model's
input size how to read it, and ``GridLayout.to_nchw`` applies the same reading to activations
and gradients alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from engine.choices import Reshape

# Class + distillation + up to a handful of register tokens (timm's *_reg4 models have 5).
MAX_PREFIX_TOKENS = 8


@dataclass(frozen=True)
class GridLayout:
    """How one layer's output (without the batch dimension) maps onto a (C, h, w) grid."""

    kind: str  # "nchw", "nhwc" or "tokens"
    height: int
    width: int
    prefix: int = 0  # tokens in front of the patch grid, dropped

    @property
    def cells(self) -> int:
        return self.height * self.width

    def describe(self) -> str:
        if self.kind == "tokens":
            return f"tokens: {self.prefix} prefix + {self.height}×{self.width} patches"
        return f"{self.kind.upper()} {self.height}×{self.width}"

    def to_nchw(self, tensor: torch.Tensor) -> torch.Tensor:
        """(B, ...) in this layout as a contiguous (B, C, h, w) tensor."""
        if self.kind == "nchw":
            return tensor
        if self.kind == "nhwc":
            return tensor.permute(0, 3, 1, 2).contiguous()
        patches = tensor[:, self.prefix :, :]
        grid = patches.reshape(tensor.shape[0], self.height, self.width, tensor.shape[-1])
        return grid.permute(0, 3, 1, 2).contiguous()


def check_reshape_mode(mode: str) -> Reshape:
    return Reshape.parse(mode)


def _fits(grid: tuple[int, int], input_size: tuple[int, int], stride: int) -> bool:
    # Padded layers round up, unpadded ones (ViT's patch embedding) round down, the same way
    # in both axes: allowing either per axis would find a spurious grid in many a token count.
    down = tuple(size // stride for size in input_size)
    up = tuple(-(-size // stride) for size in input_size)
    return grid in (down, up)


def same_stride(grid: tuple[int, int], input_size: tuple[int, int]) -> bool:
    """Whether an integer stride s maps the input (H, W) onto the grid (h, w) in both axes."""
    (h, w), (height, width) = grid, input_size
    if h < 1 or w < 1 or h > height or w > width:
        return False
    low = max(1, height // (h + 1))
    high = height // max(h - 1, 1) + 1
    return any(_fits((h, w), input_size, s) for s in range(low, high + 1))


def _exact(grid: tuple[int, int], input_size: tuple[int, int]) -> bool:
    (h, w), (height, width) = grid, input_size
    return height % h == 0 and width % w == 0 and height // h == width // w


def _token_grid(
    count: int, input_size: tuple[int, int], prefix: int, exact: bool
) -> tuple[int, int] | None:
    """The (h, w) of ``count - prefix`` patch tokens at the input's aspect ratio, if any.

    ``exact``: only grids whose stride divides the input (224 / 16), else rounded ones too.
    A side of 1 is never a patch grid.
    """
    cells = count - prefix
    small = [h for h in range(2, math.isqrt(max(cells, 0)) + 1) if cells % h == 0]
    for grid in [(h, cells // h) for h in small] + [(cells // h, h) for h in small]:
        if _exact(grid, input_size) if exact else same_stride(grid, input_size):
            return grid
    return None


def _prefixes(count: int, prefix_hint: int | None) -> list[int]:
    # A model that says how many prefix tokens it has (timm, torchvision) is taken at its word.
    if prefix_hint is not None:
        return [prefix_hint] if 0 <= prefix_hint <= count - 4 else []
    return list(range(min(MAX_PREFIX_TOKENS, count - 4) + 1))


def _square_grid(count: int, prefix_hint: int | None) -> GridLayout | None:
    """Forced token reading for inputs resized inside the model: a square grid."""
    for prefix in _prefixes(count, prefix_hint):
        side = math.isqrt(count - prefix)
        if side * side == count - prefix:
            return GridLayout("tokens", side, side, prefix)
    return None


def find_tokens(
    count: int, input_size: tuple[int, int], prefix_hint: int | None = None
) -> GridLayout | None:
    """Read N tokens as k prefix tokens + an h×w patch grid at the input's aspect ratio."""
    prefixes = _prefixes(count, prefix_hint)
    # An exact stride with any prefix count before a rounded one: a rounded stride with a
    # smaller count fits many token counts by chance.
    for prefix, exact in [(k, True) for k in prefixes] + [(k, False) for k in prefixes]:
        grid = _token_grid(count, input_size, prefix, exact)
        if grid is not None:
            return GridLayout("tokens", *grid, prefix)
    return None


def find_grid(
    shape: Sequence[int],
    input_size: tuple[int, int],
    mode: str = "auto",
    prefix_hint: int | None = None,
) -> GridLayout | None:
    """How to read an output of ``shape`` (no batch dimension) as (C, h, w); None if it is not.

    4-D outputs are NCHW when (h, w) divides the input with one stride in both axes, else NHWC
    when the middle two dimensions do, else NCHW as before (any 4-D output was a map).
    3-D outputs are tokens (N, C). ``mode`` forces a reading: "none" only NCHW, "nhwc" every
    4-D output channels-last, "tokens" also tokens whose grid does not match the input.
    """
    return _find_grid(tuple(int(d) for d in shape), tuple(input_size), mode, prefix_hint)


@lru_cache(maxsize=1024)  # a transformer repeats a few shapes hundreds of times
def _find_grid(
    shape: tuple[int, ...], input_size: tuple[int, int], mode: str, prefix_hint: int | None
) -> GridLayout | None:
    if len(shape) == 3:
        channels_last = mode == "nhwc" or (
            mode == "auto"
            and not same_stride(shape[1:], input_size)
            and same_stride(shape[:2], input_size)
        )
        if channels_last:
            return GridLayout("nhwc", shape[0], shape[1])
        return GridLayout("nchw", shape[1], shape[2])
    if len(shape) == 2 and mode != "none":
        found = find_tokens(shape[0], input_size, prefix_hint)
        if found is None and mode == "tokens":
            found = _square_grid(shape[0], prefix_hint)
        return found
    return None


def prefix_tokens(model: nn.Module) -> int | None:
    """How many tokens precede the patches, when the model says (timm, torchvision ViT)."""
    for module in model.modules():
        count = getattr(module, "num_prefix_tokens", None)
        if isinstance(count, int):
            return count
        if isinstance(getattr(module, "class_token", None), torch.Tensor):
            return 1
    return None
