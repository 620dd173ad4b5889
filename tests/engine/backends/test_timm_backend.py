"""Tests for engine/backends/timm_backend.py: timm models by name, loaded like torchvision's."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.cam import CamEngine
from engine.checkpoint import load_model
from engine.errors import InspectorError
from engine.profile import load_profile
from engine.resources import resource_path
from tests.conftest import NEU
from tests.engine.backends.common import (
    SIZE,
    csv_rows,
    images,
    profile_for,
    run_batch,
    write_profile,
)


def test_timm_cam_equals_pytorch_grad_cam(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    grad_cam = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(4)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=len(NEU)).eval()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    engine = CamEngine.from_profile(
        profile_for(tmp_path / "w.pth", "timm:resnet10t", classes=list(NEU)), "cpu"
    )
    assert engine.default_layer == "layer4"
    # Images at the input size, so both maps are normalised on the same grid.
    pictures = [np.random.default_rng(i).integers(0, 256, (*SIZE, 3), np.uint8) for i in (0, 1)]
    ours = engine.explain(pictures)
    with grad_cam.GradCAM(model=engine.model, target_layers=[engine.model.layer4]) as cam:
        theirs = cam(input_tensor=engine.prepare(pictures), targets=None)
    for result, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(result.cam, expected, atol=1e-3)
        assert result.cam.max() == pytest.approx(1.0, abs=1e-3)


def test_unknown_timm_name_suggests_close_ones() -> None:
    pytest.importorskip("timm")
    with pytest.raises(InspectorError, match=r"'resnet10' is not a timm model \(did you mean "):
        load_model(profile_for(None, "timm:resnet10", classes=list(NEU)))
    with pytest.raises(InspectorError, match="would be downloaded from the Hugging Face hub"):
        load_model(profile_for(None, "timm:hf-hub:timm/resnet18.a1_in1k", classes=list(NEU)))


def test_missing_timm_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(InspectorError) as info:
        load_model(profile_for(None, "timm:resnet10t", classes=list(NEU)))
    assert str(info.value) == (
        "architecture 'timm:resnet10t' needs the timm package, which is not installed: "
        "pip install 'gradcam-inspector[timm]'"
    )


def test_xception_keras_profile(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    shutil.copy(resource_path("profiles", "xception_keras.toml"), tmp_path)
    torch.manual_seed(5)
    model = timm.create_model("legacy_xception", pretrained=False).eval()
    torch.save(model.state_dict(), tmp_path / "xception_keras.pth")
    profile = load_profile(tmp_path / "xception_keras.toml")
    assert profile.preprocess.size == (299, 299)
    assert (profile.cam.colormap, profile.cam.alpha) == ("jet", 0.4)
    assert (profile.cam.normalize, profile.cam.blend) == ("max", "additive")
    assert len(profile.classes) == 1000 and profile.classes[340] == "zebra"
    engine = CamEngine.from_profile(profile, "cpu")
    # act4 is Keras' block14_sepconv2_act, and the automatic choice agrees with the profile.
    assert engine.default_layer == "act4" == engine.inventory.default_layer
    picture = images(1)[0]
    # keras.applications.xception.preprocess_input: x / 127.5 - 1.
    resized = cv2.resize(picture, (299, 299), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    keras_input = torch.from_numpy(resized / 127.5 - 1.0).permute(2, 0, 1)[None]
    torch.testing.assert_close(engine.prepare([picture]), keras_input, atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = model(keras_input).argmax(1).item()
    result = engine.explain([picture])[0]
    assert result.layer == "act4" and result.raw.shape == (10, 10)
    assert result.predicted.index == expected
    assert result.predicted.name == profile.classes[expected]


def test_neu_vit_timm_profile(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    shutil.copy(resource_path("profiles", "neu_vit_timm.toml"), tmp_path)
    torch.manual_seed(7)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=6).eval()
    torch.save(model.state_dict(), tmp_path / "neu_vit_small.pth")
    engine = CamEngine.from_profile(load_profile(tmp_path / "neu_vit_timm.toml"), "cpu")
    assert engine.classes == NEU and engine.default_layer == "blocks.11.norm1"
    result = engine.explain(images(1))[0]
    assert result.raw.shape == (14, 14) and result.cam.shape == (50, 70)
    with torch.no_grad():
        expected = torch.softmax(model(engine.prepare(images(1))), 1)[0]
    assert [p.probability for p in result.top_k] == pytest.approx(
        expected.sort(descending=True).values[:5].tolist(), abs=1e-5
    )


def test_cli_batch_on_a_timm_profile(neu_folder: Path, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(6)
    model = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=6)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pth")
    profile = write_profile(tmp_path, "timm:mobilenetv3_small_050", "w.pth")
    assert run_batch(profile, neu_folder, tmp_path / "out") == 0
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert {r["layer"] for r in rows} == {"blocks"}  # the last stage before the 1x1 head
    cam = np.load(tmp_path / "out" / "crazing_1_cam.npy")
    assert cam.shape == (200, 200) and cam.max() == pytest.approx(1.0, abs=1e-3)
