"""Tests for engine/backends/python_backend.py: the user's own model code, run only when trusted."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cam import CamEngine
from engine.checkpoint import load_model
from engine.cli import run
from engine.errors import InspectorError
from engine.profile import parse_profile
from tests.conftest import NEU
from tests.engine.backends.common import SIZE, images, reference_engine

# A training script's model: a backbone plus a head, and a line that proves the file ran.
NET_PY = """
from pathlib import Path

from torch import nn

Path(__file__).with_name("ran.txt").write_text("the file ran")


class MyNet(nn.Module):
    def __init__(self, num_classes=6):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def build(num_classes):
    return MyNet(num_classes)
"""


def _write_code(folder: Path) -> Path:
    path = folder / "net.py"
    path.write_text(NET_PY, encoding="utf-8")
    return path


def _profile(folder: Path, **data: object):
    base = {"classes": list(NEU), "preprocess": {"size": list(SIZE)}}
    return parse_profile(base | data, folder, None)


def _trained(folder: Path) -> torch.nn.Module:
    """The user's class built here as the training script would, seeded."""
    from engine.backends.python_backend import user_module

    torch.manual_seed(5)
    return user_module(folder / "net.py").MyNet(len(NEU)).eval()


def test_python_architecture_loads_a_state_dict_when_trusted(tmp_path: Path) -> None:
    _write_code(tmp_path)
    net = _trained(tmp_path)
    torch.save({"backbone." + k: v for k, v in net.state_dict().items()}, tmp_path / "w.pth")
    profile = _profile(
        tmp_path, architecture="python:net.py:build", weights="w.pth", trust_code=True
    )
    engine = CamEngine.from_profile(profile, "cpu")
    assert "stripped 'backbone.' prefix" in engine.load_info.notes
    expected = reference_engine(net, "features").explain(images())
    for ours, theirs in zip(engine.explain(images()), expected, strict=True):
        assert ours.predicted == theirs.predicted
        np.testing.assert_allclose(ours.cam, theirs.cam, atol=1e-6)


def test_python_architecture_is_refused_without_trust_and_nothing_runs(tmp_path: Path) -> None:
    _write_code(tmp_path)
    profile = _profile(tmp_path, architecture="python:net.py:build")
    with pytest.raises(InspectorError) as info:
        load_model(profile)
    assert str(info.value) == (
        "architecture 'python:net.py:build' runs the Python file 'net.py', which can do "
        "anything your account can; run it only if you trust it: set trust_code = true in the "
        "profile or pass --trust-code"
    )
    assert not (tmp_path / "ran.txt").exists()


def test_cli_trust_code_flag(tmp_path: Path, neu_folder: Path) -> None:
    _write_code(tmp_path)
    torch.save(_trained(tmp_path).state_dict(), tmp_path / "w.pth")
    (tmp_path / "ran.txt").unlink()
    toml = tmp_path / "p.toml"
    toml.write_text(
        'architecture = "python:net.py:build"\nweights = "w.pth"\n[preprocess]\nsize = [64, 64]\n',
        encoding="utf-8",
    )
    args = ["batch", "--profile", str(toml), "--input", str(neu_folder / "IMAGES")]
    args += ["--output", str(tmp_path / "out"), "--device", "cpu"]
    assert run(args) == 2
    assert not (tmp_path / "ran.txt").exists()
    assert run([*args, "--trust-code"]) == 0


@pytest.fixture
def main_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A whole model pickled from a training script: it names __main__.MyNet."""
    _write_code(tmp_path)
    net = _trained(tmp_path)
    cls = type(net)
    monkeypatch.setattr(cls, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "MyNet", cls, raising=False)
    torch.save(net, tmp_path / "whole.pt")
    (tmp_path / "ran.txt").unlink()
    return tmp_path / "whole.pt"


def test_code_file_unpickles_a_main_model_when_trusted(tmp_path: Path, main_pickle: Path) -> None:
    data = {"code": "net.py", "weights": main_pickle.name, "trust_pickle": True}
    profile = _profile(tmp_path, **data, trust_code=True)
    assert profile.architecture == f"python:{tmp_path / 'net.py'}"
    with pytest.warns(UserWarning, match="full unpickling"):
        loaded = load_model(profile)
    assert type(loaded.model).__name__ == "MyNet"
    assert (
        loaded.notes[0]
        == "loaded pickled objects from 'whole.pt' with the classes of 'net.py' (trusted)"
    )
    picture = torch.randn(1, 3, *SIZE)
    torch.testing.assert_close(loaded.model(picture), _trained(tmp_path)(picture))


def test_code_file_is_refused_without_trust_and_nothing_runs(
    tmp_path: Path, main_pickle: Path
) -> None:
    data = {"code": "net.py", "weights": main_pickle.name, "trust_pickle": True}
    with pytest.raises(InspectorError, match="set trust_code = true in the profile or pass"):
        load_model(_profile(tmp_path, **data))
    with pytest.raises(InspectorError, match="set trust_pickle = true in the profile or pass"):
        load_model(_profile(tmp_path, **data | {"trust_pickle": False}, trust_code=True))
    assert not (tmp_path / "ran.txt").exists()


def test_a_main_pickle_without_code_says_to_name_the_script(
    tmp_path: Path, main_pickle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(sys.modules["__main__"], "MyNet")
    profile = _profile(tmp_path, architecture="resnet18", weights=main_pickle.name)
    with pytest.warns(UserWarning), pytest.raises(InspectorError) as info:
        load_model(profile, trust_pickle=True)
    assert str(info.value).startswith("cannot unpickle 'whole.pt': ")
    assert str(info.value).endswith('; set code = "<the script that defines it>.py" in the profile')
