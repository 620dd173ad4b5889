"""Guided Grad-CAM: guided backpropagation at the input times Grad-CAM, a pixel-level map."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.methods.gradient import gradcam
from engine.methods.registry import MethodInputs


def guided_gradcam(inputs: MethodInputs) -> torch.Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017) at the model's input size, (B, H, W).

    The guided-backpropagation gradient (the engine runs it through the model's ``nn.ReLU``
    modules) times the ReLU'd Grad-CAM upsampled bilinearly to the input, reduced to one map by
    the absolute value summed over channels: Captum's ``GuidedGradCam(interpolate_mode=
    "bilinear")`` reduced that way.
    """
    cam = gradcam(inputs).clamp(min=0)[:, None]
    upsampled = F.interpolate(cam, size=inputs.input_size, mode="bilinear", align_corners=False)
    return (inputs.guided_gradient() * upsampled).abs().sum(dim=1)
