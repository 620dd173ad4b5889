"""Helpers shared by the backend tests: profiles in code, test images, reference engines."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.cam import CamEngine
from engine.cli import run
from engine.profile import ModelProfile, parse_profile
from tests.conftest import NEU, engine_records

SIZE = (64, 64)

# The legacy exporter names nodes after the modules; layer4's output is its last ReLU call.
LEGACY_LAYER4 = "layer4/layer4/1/relu_1/Relu"


def profile_for(weights: Path | None, architecture: str, **tables: object) -> ModelProfile:
    data: dict[str, object] = {"architecture": architecture, "preprocess": {"size": list(SIZE)}}
    if weights is not None:
        data["weights"] = str(weights)
    data.update(tables)
    return parse_profile(data, Path.cwd(), None)


def images(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (50 + 7 * i, 70, 3), dtype=np.uint8) for i in range(count)]


def reference_engine(model: nn.Module, layer: str) -> CamEngine:
    return CamEngine(model, NEU, *engine_records(SIZE, layer=layer), "cpu")


def assert_same_cams(engine: CamEngine, reference: CamEngine) -> None:
    """Same predictions and Grad-CAM maps (at the engines' default layers) for three images."""
    pictures = images()
    expected = reference.explain(pictures)
    got = engine.explain(pictures)
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.predicted.index == theirs.predicted.index
        assert ours.predicted.probability == pytest.approx(theirs.predicted.probability, abs=1e-4)
        assert ours.raw.shape == theirs.raw.shape
        np.testing.assert_allclose(ours.raw, theirs.raw, atol=1e-3)
        np.testing.assert_allclose(ours.cam, theirs.cam, atol=1e-3)


def export(model: nn.Module, path: Path, shape: tuple[int, ...], **options: object) -> Path:
    """model exported to ONNX by the legacy (TorchScript-based) exporter unless dynamo=True."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    if not options.setdefault("dynamo", False):
        options.setdefault("opset_version", 17)  # the legacy exporter's default changes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation and tracer chatter
        torch.onnx.export(model, (torch.zeros(shape),), str(path), **options)
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run_batch(profile: Path, folder: Path, out: Path) -> int:
    args = ["batch", "--profile", str(profile), "--input", str(folder / "IMAGES")]
    return run([*args, "--output", str(out), "--device", "cpu", "--save-raw"])


def write_profile(folder: Path, architecture: str, weights: str) -> Path:
    classes = ", ".join(f'"{c}"' for c in NEU)
    path = folder / "p.toml"
    path.write_text(
        f'architecture = "{architecture}"\nweights = "{weights}"\nclasses = [{classes}]\n'
        "[preprocess]\nsize = [64, 64]\n",
        encoding="utf-8",
    )
    return path
