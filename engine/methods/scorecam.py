"""Score-CAM: channels weighted by how much the target's score keeps when each masks the input."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.errors import CamCancelled
from engine.methods.gradient import weighted_map
from engine.methods.registry import MethodInputs

# Masked copies per model pass: a pass's memory stays bounded whatever the channel count.
MASK_BATCH = 32


def _masks(channels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, n, h, w) activation channels as (n, H, W) masks, each min-max scaled to [0, 1]."""
    masks = F.interpolate(channels, size=size, mode="bilinear", align_corners=True)[0]
    low = masks.flatten(1).min(dim=1).values[:, None, None]
    high = masks.flatten(1).max(dim=1).values[:, None, None]
    return (masks - low) / (high - low + 1e-8)


def scorecam(inputs: MethodInputs) -> torch.Tensor:
    """Score-CAM (Wang et al. 2020): each channel, upsampled and normalised, masks the input;
    the softmax over channels of the masked inputs' target scores weights the channels.

    Masks run ``MASK_BATCH`` at a time (fewer when the model takes fewer images per pass), so
    memory stays bounded; cancel is checked and progress reported once per model pass.
    """
    activation = inputs.activation
    mask_batch = min(MASK_BATCH, inputs.max_batch or MASK_BATCH)
    images, channels = activation.shape[:2]
    steps = images * ((channels + mask_batch - 1) // mask_batch)
    done = 0
    weights = torch.empty(images, channels, device=activation.device)
    for image in range(images):
        scores = []
        for start in range(0, channels, mask_batch):
            if inputs.cancel is not None and inputs.cancel():
                raise CamCancelled()
            chunk = activation[image : image + 1, start : start + mask_batch]
            masks = _masks(chunk, inputs.input_size)
            scores.append(inputs.masked_scores(image, masks))
            done += 1
            if inputs.progress is not None:
                inputs.progress(done, steps)
        weights[image] = torch.softmax(torch.cat(scores), dim=0)
    return weighted_map(activation, weights, inputs.eigen_smooth)
