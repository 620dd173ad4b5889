"""CAM methods: how each turns a captured (activation, gradient) pair into a raw map.

Every function takes activations ``a`` and gradients ``g`` of shape (B, C, h, w) on any device
and returns the raw map (B, h, w) before the ReLU. Formulas follow the papers as implemented by
pytorch-grad-cam, so maps agree with it; the maths stays in torch on the caller's device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

CamFunction = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def _weighted_sum(activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bc,bchw->bhw", weights, activations)


def gradcam(a: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): channels weighted by their mean gradient."""
    return _weighted_sum(a, g.mean(dim=(2, 3)))


def gradcam_plus_plus(a: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19): positive gradients weighted by alpha."""
    g2 = g * g
    g3 = g2 * g
    sum_a = a.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    weights = (g.clamp(min=0) * alpha).sum(dim=(2, 3))
    return _weighted_sum(a, weights)


def xgradcam(a: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): gradients weighted by the normalised activation."""
    sum_a = a.sum(dim=(2, 3), keepdim=True)
    weights = (g * a / (sum_a + 1e-7)).sum(dim=(2, 3))
    return _weighted_sum(a, weights)


def hirescam(a: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """HiResCAM (Draelos & Carin 2020): element-wise gradient times activation."""
    return (g * a).sum(dim=1)


def layercam(a: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): element-wise positive gradient times activation."""
    return (g.clamp(min=0) * a).sum(dim=1)


def eigencam(a: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020): projection on the first principal component.

    Needs no gradient. An SVD's sign is arbitrary and differs between LAPACK builds, so this one
    runs in NumPy exactly as pytorch-grad-cam does, giving the same sign; the matrix is only
    (h*w, C), small next to the model pass.
    """
    batch, channels, height, width = a.shape
    flat = a.detach().float().cpu().numpy().reshape(batch, channels, height * width)
    maps = []
    for sample in np.nan_to_num(flat):
        centred = sample.T - sample.T.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=True)
        maps.append((centred @ vt[0, :]).reshape(height, width))
    return torch.from_numpy(np.float32(maps)).to(a.device)


GRADIENT_METHODS: dict[str, CamFunction] = {
    "gradcam": gradcam,
    "gradcam++": gradcam_plus_plus,
    "xgradcam": xgradcam,
    "hirescam": hirescam,
    "layercam": layercam,
}
ACTIVATION_METHODS: dict[str, CamFunction] = {"eigencam": eigencam}
# Score-CAM needs extra model passes; it lives with the engine (engine/cam.py).
PASS_METHODS: tuple[str, ...] = ("scorecam",)
ALL_METHODS: tuple[str, ...] = (*GRADIENT_METHODS, *ACTIVATION_METHODS, *PASS_METHODS)
