"""ui/selftest.py: `--self-test` passes on a sound install and names the step that breaks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine.resources
from ui import selftest

REPO = Path(__file__).resolve().parents[2]
STEPS = ("qt", "torch", "model", "cam", "render", "export", "pdf")
CUDA = torch.cuda.is_available()


def check_passed_output(text: str) -> None:
    lines = text.strip().splitlines()
    assert lines[-1] == "self-test passed", text
    for step in STEPS:
        assert any(line.startswith(f"{step}: ok ") for line in lines), (step, text)
    if CUDA:
        assert any(line.startswith("cuda: ok ") for line in lines), text
    else:
        assert "cuda: skipped (no CUDA device)" in lines, text
    assert "scratches_1.jpg: scratches" in text
    assert "peak on the defect" in text


def test_run_passes_in_process(qapp, capsys: pytest.CaptureFixture[str]) -> None:
    assert selftest.run() == 0
    check_passed_output(capsys.readouterr().out)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_step_runs_on_a_gpu(qapp, capsys: pytest.CaptureFixture[str]) -> None:
    assert selftest.run() == 0
    out = capsys.readouterr().out
    assert "same class, CAM within" in out


def test_missing_resources_fail_at_the_model_step(
    qapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(engine.resources, "resources_dir", lambda: tmp_path / "nowhere")
    assert selftest.run() == 1
    out = capsys.readouterr().out
    assert "self-test FAILED at step 'model'" in out
    assert "demo profile missing" in out
    assert "self-test passed" not in out


def test_wrong_pixels_fail_at_the_export_step(
    qapp, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PNG that does not decode to the overlay is caught (here: one channel zeroed)."""
    import engine.images

    real = engine.images.load_image

    def corrupt_png(path):
        image = real(path)
        if str(path).endswith(".png"):
            image = image.copy()
            image[..., 0] = 0
        return image

    monkeypatch.setattr(engine.images, "load_image", corrupt_png)
    assert selftest.run() == 1
    out = capsys.readouterr().out
    assert "self-test FAILED at step 'export'" in out
    assert "decodes to other pixels" in out


def test_main_self_test_subprocess(tmp_path: Path) -> None:
    """`python main.py --self-test` as a user would run it: exit 0, every step printed."""
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must choose offscreen by itself
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run(
        [sys.executable, "main.py", "--self-test"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    check_passed_output(done.stdout)
    assert "platform 'offscreen'" in done.stdout
