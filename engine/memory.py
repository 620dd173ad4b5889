"""Memory estimates: what a model input size costs, against what the machine has free."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import InspectorError

# Measured: a ResNet18 Grad-CAM pass (forward, then backward to the hooked layer) peaks at
# 0.8-1.1 KB of activations and gradients per input pixel on the CPU (benchmarks/bench_memory.py).
PASS_BYTES_PER_INPUT_PIXEL = 1024


def available_bytes(device: str = "cpu") -> int | None:
    """Memory free for a pass on the device: MemAvailable on Linux, free CUDA memory for a
    GPU, free physical pages elsewhere; None where the system does not say."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_input_size(size: tuple[int, int], device: str = "cpu") -> None:
    """Refuse an input size whose one-image pass could not fit in free memory, before any pass
    allocates it (8192x8192 asks for ~64 GB; it used to die in a 4 GB allocation)."""
    height, width = size
    needed = height * width * PASS_BYTES_PER_INPUT_PIXEL
    free = available_bytes(device)
    if free is not None and needed > free:
        raise InspectorError(
            f"input size {height}x{width} needs about {needed / 1024**3:,.1f} GB for one image's "
            f"pass, and {free / 1024**3:,.1f} GB is free on {device}; choose a smaller "
            "preprocess.size in the profile"
        )
