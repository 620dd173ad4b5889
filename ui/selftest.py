"""`gradcam-inspector --self-test`: a headless end-to-end check of an installed or frozen build.

It exercises what a double-click start needs, one step at a time: the Qt platform plugin
(offscreen), the bundled demo profile and weights, torch and torchvision's compiled operators,
one CAM on a bundled sample image (and on CUDA where a GPU is present), the overlay as numpy
and as a QImage, an atomic PNG export and decoding that file back, and a report page with the
overlay as a JPEG written to PDF (`report --pdf`: Qt's JPEG plugin and PDF writer). Each step
prints one line; the last line is `self-test passed`.
A failure prints the step and the reason and returns 1, so a broken bundle is caught by a
script, not by an inspector.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SAMPLE_IMAGE = ("samples", "IMAGES", "scratches_1.jpg")
SAMPLE_BOXES = ("samples", "ANNOTATIONS", "scratches_1.xml")
EXPECTED_CLASS = "scratches"  # the demo model's answer on that sample (100% on the samples)


class SelfTestError(Exception):
    """A check that ran but found a wrong value."""


class StepSkipped(Exception):
    """A step that does not apply on this machine (e.g. CUDA without a GPU)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SelfTestError(message)


def _qt_app() -> str:
    # Before any QGuiApplication exists: the bundled offscreen platform plugin must load.
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    platform = app.platformName()
    _check(platform == "offscreen", f"Qt platform is '{platform}', expected 'offscreen'")
    return f"Qt {_qt_version()} platform '{platform}'"


def _qt_version() -> str:
    from PySide6 import __version__

    return __version__


def _torch_ops() -> str:
    import torch
    import torchvision
    from torchvision.ops import nms

    # nms is a compiled torchvision operator: a bundle missing _C_stable.so fails here.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20, 30, 30]])
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5).tolist()
    _check(keep == [0, 2], f"torchvision nms kept {keep}, expected [0, 2]")
    cuda = "CUDA available" if torch.cuda.is_available() else "no CUDA device"
    return f"torch {torch.__version__}, torchvision {torchvision.__version__}, nms ok, {cuda}"


def _load_engine(state: dict[str, Any]) -> str:
    from engine.cam import CamEngine
    from engine.profile import demo_profile_path, load_profile

    profile_path = demo_profile_path()
    _check(profile_path.is_file(), f"demo profile missing at {profile_path}")
    profile = load_profile(profile_path)
    state["engine"] = CamEngine.from_profile(profile, device="cpu")
    state["profile"] = profile
    return f"demo profile '{profile.name}' from {profile_path}"


def _compute_cam(state: dict[str, Any]) -> str:
    import numpy as np

    from engine.dataset import read_voc
    from engine.images import load_image
    from engine.localization import pointing_hit
    from engine.resources import resource_path

    image = load_image(resource_path(*SAMPLE_IMAGE))
    boxes = read_voc(resource_path(*SAMPLE_BOXES)).boxes
    engine = state["engine"]
    result = engine.explain([image], state["profile"].cam.method)[0]
    cam = result.cam
    _check(cam.shape == image.shape[:2], f"CAM shape {cam.shape} != image {image.shape[:2]}")
    _check(bool(np.isfinite(cam).all()), "CAM has non-finite values")
    low, high = float(cam.min()), float(cam.max())
    _check(abs(low) < 1e-4 and abs(high - 1.0) < 1e-4, f"CAM spans [{low}, {high}], not [0, 1]")
    name = result.predicted.name
    _check(name == EXPECTED_CLASS, f"demo model predicts '{name}', expected '{EXPECTED_CLASS}'")
    _check(pointing_hit(cam, boxes) is True, "the CAM's peak is outside the scratch's boxes")
    state["image"], state["cam"] = image, cam
    confidence = result.predicted.probability
    return f"{SAMPLE_IMAGE[-1]}: {name} ({confidence:.1%}) at {result.layer}, peak on the defect"


def _cuda_cam(state: dict[str, Any]) -> str:
    """Where a GPU is present, the same CAM on CUDA: proves the bundled CUDA libraries load."""
    import numpy as np
    import torch

    from engine.cam import CamEngine

    if not torch.cuda.is_available():
        raise StepSkipped("no CUDA device")
    engine = CamEngine.from_profile(state["profile"], device="cuda")
    result = engine.explain([state["image"]], state["profile"].cam.method)[0]
    name = result.predicted.name
    _check(name == EXPECTED_CLASS, f"on CUDA the demo model predicts '{name}'")
    # TF32 convolutions and cuDNN's algorithms move the map a little; a broken path moves it a lot.
    difference = float(np.abs(result.cam - state["cam"]).max())
    _check(difference < 0.05, f"CUDA and CPU maps differ by up to {difference:.3f}")
    device = torch.cuda.get_device_name(0)
    return f"{device}: same class, CAM within {difference:.4f} of the CPU's"


def _render(state: dict[str, Any]) -> str:
    from PySide6.QtGui import QImage

    from engine.render import render_overlay

    overlay = render_overlay(state["image"], state["cam"])
    height, width = overlay.shape[:2]
    qimage = QImage(overlay.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    _check(not qimage.isNull(), "QImage conversion gave a null image")
    pixel = qimage.pixelColor(width // 2, height // 2)
    expected = tuple(int(v) for v in overlay[height // 2, width // 2])
    got = (pixel.red(), pixel.green(), pixel.blue())
    _check(got == expected, f"QImage pixel {got} != overlay pixel {expected}")
    state["overlay"] = overlay
    return f"overlay {width}x{height}, QImage matches"


def _export(state: dict[str, Any]) -> str:
    import numpy as np

    from engine.export import write_png
    from engine.images import load_image

    with tempfile.TemporaryDirectory(prefix="gradcam-selftest-") as folder:
        target = Path(folder) / "overlay.png"
        write_png(target, state["overlay"])
        decoded = load_image(target)
        _check(
            np.array_equal(decoded, state["overlay"]), "the exported PNG decodes to other pixels"
        )
        size = target.stat().st_size
    return f"PNG written atomically ({size} bytes) and decoded back identical"


def _pdf(state: dict[str, Any]) -> str:
    import base64

    from PySide6.QtGui import QImage

    from engine.report import jpeg_data_uri
    from ui.report_pdf import write_report_pdf

    uri = jpeg_data_uri(state["overlay"])
    jpeg = base64.b64decode(uri.split(",", 1)[1])
    _check(not QImage.fromData(jpeg).isNull(), "Qt cannot decode JPEG (imageformats plugin)")
    with tempfile.TemporaryDirectory(prefix="gradcam-selftest-") as folder:
        html, pdf = Path(folder) / "report.html", Path(folder) / "report.pdf"
        html.write_text(
            f'<html><head><title>self-test</title></head><body><h1>Report</h1><img src="{uri}">'
            "</body></html>",
            encoding="utf-8",
        )
        pages = write_report_pdf(html, pdf)
        data = pdf.read_bytes()
    _check(data.startswith(b"%PDF-") and pages == 1, f"report.pdf: {pages} pages, {data[:8]!r}")
    return f"a report page with a JPEG overlay written as PDF ({len(data)} bytes)"


def _session() -> str:
    """Alembic reads the migrations from files in the bundle; the team driver's libpq loads."""
    import psycopg

    from engine.session import Session, SessionContext

    with tempfile.TemporaryDirectory(prefix="gradcam-selftest-") as folder:
        path = Path(folder) / "s.sqlite"
        context = SessionContext(folder, None, "", "layer", "gradcam")
        with Session.open(path, context, reviewer="self-test") as session:
            session.set_verdict("a.png", 2)
        with Session.open_existing(path, reviewer="self-test", read_only=True) as session:
            code = session.verdict("a.png")
        _check(code is not None and code.code == 2, f"the verdict read back is {code}")
    libpq = psycopg.pq.version()
    return (
        f"a session written and read back (schema migrated); libpq {libpq} ({psycopg.pq.__impl__})"
    )


def _steps(state: dict[str, Any]) -> list[tuple[str, Callable[[], str]]]:
    return [
        ("qt", _qt_app),
        ("torch", _torch_ops),
        ("model", lambda: _load_engine(state)),
        ("cam", lambda: _compute_cam(state)),
        ("cuda", lambda: _cuda_cam(state)),
        ("render", lambda: _render(state)),
        ("export", lambda: _export(state)),
        ("pdf", lambda: _pdf(state)),
        ("session", _session),
    ]


def run() -> int:
    """Run every step in order; 0 when all pass, 1 at the first failure (printed)."""
    state: dict[str, Any] = {}
    for name, step in _steps(state):
        start = time.perf_counter()
        try:
            detail = step()
        except StepSkipped as skip:
            print(f"{name}: skipped ({skip})", flush=True)
            continue
        except Exception as exc:  # the report is the point: any failure, of any type
            print(f"self-test FAILED at step '{name}': {type(exc).__name__}: {exc}", flush=True)
            return 1
        print(f"{name}: ok ({time.perf_counter() - start:.2f} s) {detail}", flush=True)
    print("self-test passed", flush=True)
    return 0
