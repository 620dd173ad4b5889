"""Gradient methods: channel or element weights from the target's gradient at the layer.

Each takes activations ``a`` and gradients ``g`` of shape (B, C, h, w) and returns the raw map
(B, h, w) before the ReLU. Formulas follow the papers as implemented by pytorch-grad-cam, so
maps agree with it; the maths stays in torch on the caller's device.
"""

from __future__ import annotations

import torch

from engine.methods.eigencam import first_component
from engine.methods.registry import MethodInputs


def weighted_map(activations: torch.Tensor, weights: torch.Tensor, eigen: bool) -> torch.Tensor:
    """Channels weighted by (B, C) weights and summed, or with ``eigen`` (pytorch-grad-cam's
    ``eigen_smooth``) the weighted activations' first principal component."""
    if eigen:
        return first_component(weights[:, :, None, None] * activations)
    return torch.einsum("bc,bchw->bhw", weights, activations)


def _element_map(weighted: torch.Tensor, eigen: bool) -> torch.Tensor:
    """Element-wise weighted activations (B, C, h, w) summed, or their first component."""
    return first_component(weighted) if eigen else weighted.sum(dim=1)


def gradcam(inputs: MethodInputs) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): channels weighted by their mean gradient."""
    return weighted_map(inputs.activation, inputs.gradient.mean(dim=(2, 3)), inputs.eigen_smooth)


def gradcam_plus_plus(inputs: MethodInputs) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19): positive gradients weighted by alpha."""
    a, g = inputs.activation, inputs.gradient
    g2 = g * g
    g3 = g2 * g
    sum_a = a.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    weights = (g.clamp(min=0) * alpha).sum(dim=(2, 3))
    return weighted_map(a, weights, inputs.eigen_smooth)


def xgradcam(inputs: MethodInputs) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): gradients weighted by the normalised activation."""
    a, g = inputs.activation, inputs.gradient
    sum_a = a.sum(dim=(2, 3), keepdim=True)
    weights = (g * a / (sum_a + 1e-7)).sum(dim=(2, 3))
    return weighted_map(a, weights, inputs.eigen_smooth)


def hirescam(inputs: MethodInputs) -> torch.Tensor:
    """HiResCAM (Draelos & Carin 2020): element-wise gradient times activation."""
    return _element_map(inputs.gradient * inputs.activation, inputs.eigen_smooth)


def layercam(inputs: MethodInputs) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): element-wise positive gradient times activation."""
    return _element_map(inputs.gradient.clamp(min=0) * inputs.activation, inputs.eigen_smooth)
