"""Shared fixtures: tiny models built in code (nothing is downloaded)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
import torchvision
from torch import nn

from engine.demo_data import write_neu_det
from engine.profile import IMAGENET_MEAN, IMAGENET_STD, CamDefaults, OutputSpec, PreprocessSpec
from tests.pg_server import PgServer, ServerUnavailable, start_server, stop_server

if TYPE_CHECKING:
    from engine.cam import CamEngine

NEU = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")


class TinyNet(nn.Module):
    """Two conv blocks, global pooling, a linear head: a CAM layer at `features`."""

    def __init__(self, classes: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class CountingNet(TinyNet):
    """TinyNet that counts its forward passes."""

    def __init__(self) -> None:
        super().__init__(classes=3)
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        return super().forward(x)


def engine_records(
    size: tuple[int, int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    *,
    layer: str | None = None,
    layout: str = "nchw",
    normalize: str = "minmax",
    reshape: str = "auto",
    output: OutputSpec | None = None,
) -> tuple[PreprocessSpec, CamDefaults, OutputSpec]:
    """A CamEngine's profile records, a profile's defaults unless given:
    ``CamEngine(model, classes, *engine_records((64, 64)), "cpu")``."""
    preprocess = PreprocessSpec(
        (int(size[0]), int(size[1])), tuple(mean), tuple(std), "replicate", layout
    )
    cam = CamDefaults(layer, "gradcam", "jet", 0.5, normalize, "weighted", reshape)
    return preprocess, cam, output if output is not None else OutputSpec()


@pytest.fixture
def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


def make_torchvision(name: str, classes: int = 6) -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, num_classes=classes).eval()


@pytest.fixture(scope="session")
def tiny_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 profile at 64x64 with random weights the test saves (the user's own file)."""
    folder = tmp_path_factory.mktemp("profile")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(NEU))
    torch.save(model.state_dict(), folder / "weights.pth")
    classes = ", ".join(f'"{c}"' for c in NEU)
    (folder / "tiny.toml").write_text(
        f'name = "tiny"\narchitecture = "resnet18"\nweights = "weights.pth"\n'
        f"classes = [{classes}]\n[preprocess]\nsize = [64, 64]\n"
        '[cam]\nlayer = "layer4"\nmethod = "gradcam"\ncolormap = "jet"\nalpha = 0.5\n',
        encoding="utf-8",
    )
    return folder / "tiny.toml"


@pytest.fixture(scope="session")
def neu_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve generated NEU-DET images with their annotations."""
    folder = tmp_path_factory.mktemp("neu")
    write_neu_det(folder, 12, seed=3)
    return folder


def modules_loaded_by(code: str, watched: Sequence[str]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has imported after running ``code``.

    A subprocess, because this test process has long imported torch itself.
    """
    report = f"\nimport sys\nprint(','.join(m for m in {tuple(watched)!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code + report],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in out.stdout.strip().split(",") if name]


def neu_tiny_engine() -> CamEngine:
    """A seeded TinyNet over the six NEU classes at 32x32: the batch tests' model."""
    from engine.cam import CamEngine

    torch.manual_seed(0)
    return CamEngine(
        TinyNet(classes=6), NEU, *engine_records((32, 32), (0.5,) * 3, (0.25,) * 3), "cpu"
    )


def csv_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts, read as a spreadsheet would."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of our own for the whole run; skips only where none can run here."""
    try:
        server = start_server()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        stop_server(server.base_dir, server.bin_dir)


@pytest.fixture
def pg_url(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh empty database's URL (no password in it; PGPASSWORD holds it), dropped after."""
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)
