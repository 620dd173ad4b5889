"""Fixtures for the backend tests: small torch models to export and compare against."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from tests.conftest import NEU, TinyNet


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=len(NEU)).eval()


@pytest.fixture
def tiny(tmp_path: Path) -> nn.Module:
    torch.manual_seed(3)
    return TinyNet(classes=len(NEU)).eval()
