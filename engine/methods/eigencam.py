"""Eigen-CAM: the activation's first principal component, no gradient needed."""

from __future__ import annotations

import numpy as np
import torch

from engine.methods.registry import MethodInputs


def eigencam(inputs: MethodInputs) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020): projection on the first principal component."""
    return first_component(inputs.activation)


def first_component(a: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h, w): each pixel's projection on the channels' first principal
    component (Eigen-CAM, and pytorch-grad-cam's ``eigen_smooth`` of weighted activations).

    An SVD's sign is arbitrary and differs between LAPACK builds, so this one runs in NumPy
    exactly as pytorch-grad-cam does, giving the same sign; the matrix is only (h*w, C), small
    next to the model pass.
    """
    batch, channels, height, width = a.shape
    flat = a.detach().float().cpu().numpy().reshape(batch, channels, height * width)
    maps = []
    for sample in np.nan_to_num(flat):
        centred = sample.T - sample.T.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=True)
        maps.append((centred @ vt[0, :]).reshape(height, width))
    return torch.from_numpy(np.float32(maps)).to(a.device)
