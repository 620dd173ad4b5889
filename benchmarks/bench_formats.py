"""Model-format benchmark: the same ResNet18 opened as each kind of file, load time and Grad-CAM
cost per image, as ratios to the torchvision state_dict.

Run: `PYTHONPATH=. python benchmarks/bench_formats.py [--images 16] [--repeats 3]`.
Timings are interleaved (one round of every format, then the next round), so a busy machine slows
all formats alike. Needs the test extras (timm, onnx, onnx2torch, transformers).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision

from engine.cam import CamEngine
from engine.profile import parse_profile

CLASSES = [f"c{i}" for i in range(6)]
USER_CODE = """
import torchvision


def build(num_classes):
    return torchvision.models.resnet18(num_classes=num_classes)
"""


def _write_formats(folder: Path) -> dict[str, dict]:
    """Profiles (as dicts) of one ResNet18 saved in every format the engine opens."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(CLASSES)).eval()
    state = model.state_dict()
    torch.save(state, folder / "tv.pth")
    (folder / "net.py").write_text(USER_CODE, encoding="utf-8")
    torch.save(model, folder / "whole.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), folder / "m.onnx", dynamo=False)
    import timm

    timm_model = timm.create_model("resnet18", pretrained=False, num_classes=len(CLASSES))
    torch.save(timm_model.state_dict(), folder / "timm.pth")
    import transformers

    config = transformers.ResNetConfig(
        hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic"
    )
    config.id2label = dict(enumerate(CLASSES))
    transformers.ResNetForImageClassification(config).eval().save_pretrained(folder / "hf")
    size = {"preprocess": {"size": [224, 224]}, "classes": CLASSES}
    return {
        "torchvision state_dict": {"architecture": "resnet18", "weights": "tv.pth"} | size,
        "timm state_dict": {"architecture": "timm:resnet18", "weights": "timm.pth"} | size,
        "python: user code": {
            "architecture": "python:net.py:build",
            "weights": "tv.pth",
            "trust_code": True,
        }
        | size,
        "full pickle (trusted)": {
            "architecture": "resnet18",
            "weights": "whole.pt",
            "trust_pickle": True,
        }
        | size,
        "ONNX (onnx2torch)": {"architecture": "onnx", "weights": "m.onnx"} | size,
        "Hugging Face folder": {"architecture": "hf", "weights": "hf"},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(tmp)
        formats = _write_formats(folder)
        loads: dict[str, list[float]] = {name: [] for name in formats}
        per_image: dict[str, list[float]] = {name: [] for name in formats}
        for _ in range(args.repeats):
            for name, data in formats.items():
                start = time.perf_counter()
                engine = CamEngine.from_profile(parse_profile(data, folder, None), "cpu")
                _ = engine.default_layer  # the layer probe is part of opening
                loads[name].append(time.perf_counter() - start)
                engine.explain(pictures[:1])  # warm-up
                start = time.perf_counter()
                for first in range(0, len(pictures), 8):
                    engine.explain(pictures[first : first + 8])
                per_image[name].append((time.perf_counter() - start) / len(pictures))
    base_load = statistics.median(loads["torchvision state_dict"])
    base_image = statistics.median(per_image["torchvision state_dict"])
    print(f"{'format':<26} {'open s':>7} {'x tv':>6} {'ms/image':>9} {'x tv':>6}")
    for name in formats:
        load, image = statistics.median(loads[name]), statistics.median(per_image[name])
        print(
            f"{name:<26} {load:7.2f} {load / base_load:6.2f} {1000 * image:9.1f} "
            f"{image / base_image:6.2f}"
        )


if __name__ == "__main__":
    main()
