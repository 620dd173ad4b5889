"""Tests for engine/backends/torchscript_backend.py: TorchScript refused, with the reason."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from engine.backends.torchscript_backend import TorchScriptBackend
from engine.checkpoint import load_model
from engine.errors import InspectorError
from tests.conftest import NEU, TinyNet
from tests.engine.backends.common import SIZE, profile_for


@pytest.mark.parametrize(("how", "name"), [("script", "model.pt"), ("trace", "weights.pth")])
def test_torchscript_is_refused_with_a_reason(tmp_path: Path, how: str, name: str) -> None:
    net = TinyNet(classes=len(NEU)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation warnings
        if how == "script":
            compiled = torch.jit.script(net)
        else:
            compiled = torch.jit.trace(net, torch.zeros(1, 3, *SIZE))
        torch.jit.save(compiled, tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before torch.load could warn about it
        with pytest.raises(InspectorError) as info:
            load_model(profile_for(tmp_path / name, "resnet18", classes=list(NEU)))
    assert str(info.value) == (
        f"'{name}' is a TorchScript model: it runs a compiled graph, so hooks cannot be attached "
        "to its layers; save model.state_dict() (or export to ONNX) instead"
    )


def test_a_torchscript_architecture_is_refused_when_the_profile_is_read() -> None:
    with pytest.raises(InspectorError) as info:
        profile_for(None, "torchscript")
    assert str(info.value) == (
        "profile: architecture 'torchscript' is refused: a TorchScript model runs "
        "a compiled graph, so hooks cannot be attached to its layers; save model.state_dict() "
        "(or export to ONNX) instead; an architecture is a torchvision classifier name, "
        "timm:<name>, onnx, hf (a Hugging Face folder) or python:<file.py>:<callable>"
    )


def test_a_state_dict_archive_is_not_taken_for_torchscript(tmp_path: Path) -> None:
    torch.save(TinyNet().state_dict(), tmp_path / "w.pt")  # a zip archive without constants.pkl
    assert TorchScriptBackend().refusal(tmp_path / "w.pt") is None
    (tmp_path / "w.bin").write_bytes(b"PK\x03\x04 not really a zip")
    assert TorchScriptBackend().refusal(tmp_path / "w.bin") is None
