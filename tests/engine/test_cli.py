"""Tests for engine/cli.py and engine/batch.py: the command line end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision

from engine.cli import run
from tests.conftest import NEU


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _decode(path: Path) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def test_batch_end_to_end(tiny_profile: Path, neu_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = run(
        [
            "batch",
            "--profile",
            str(tiny_profile),
            "--input",
            str(neu_folder),
            "--output",
            str(out),
            "--save-raw",
            "--panels",
            "--batch-size",
            "5",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    rows = _read_csv(out / "results.csv")
    assert len(rows) == 12
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["method"] for r in rows} == {"gradcam"} and {r["layer"] for r in rows} == {"layer4"}
    first = rows[0]
    assert first["path"] == "IMAGES/crazing_1.jpg" and first["ground_truth"] == "crazing"
    assert first["predicted"] in NEU and 0 < float(first["confidence"]) <= 1
    assert all(r["pointing_hit"] in ("0", "1") for r in rows)
    assert all(0.0 <= float(r["energy_in_box"]) <= 1.0 for r in rows)
    stem = out / "IMAGES" / "crazing_1"
    heatmap = _decode(stem.with_name("crazing_1_heatmap.png"))
    overlay = _decode(stem.with_name("crazing_1_overlay.png"))
    assert heatmap.shape == overlay.shape == (200, 200, 3)
    cam = np.load(stem.with_name("crazing_1_cam.npy"))
    assert cam.dtype == np.float32 and cam.shape == (200, 200)
    assert cam.min() >= 0.0 and cam.max() == pytest.approx(1.0, abs=1e-3)
    assert _decode(stem.with_name("crazing_1_panels.png")).shape[1] > 3 * 200
    assert not any(neu_folder.rglob("*_overlay.png"))  # nothing written into the input


def test_bad_files_get_error_rows_and_the_run_goes_on(
    tiny_profile: Path, neu_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted((neu_folder / "IMAGES").glob("*.jpg"))[:2]
    for path in good:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image", encoding="utf-8")
    jpeg = good[0].read_bytes()
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    out = tmp_path / "out"
    code = run(
        ["batch", "--profile", str(tiny_profile), "--input", str(folder), "--output", str(out)]
    )
    assert code == 3
    rows = {r["path"]: r for r in _read_csv(out / "results.csv")}
    assert len(rows) == 5
    for name in ("empty.png", "notes.png", "cut.jpg"):
        assert rows[name]["status"] == "error"
        assert name in rows[name]["error"] and "\n" not in rows[name]["error"]
    assert [rows[p.name]["status"] for p in good] == ["ok", "ok"]
    assert (out / f"{good[0].stem}_overlay.png").is_file()
    assert "Traceback" not in capsys.readouterr().err


def test_mismatched_checkpoint_is_a_usage_error(
    neu_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "w.pth")
    profile = tmp_path / "p.toml"
    profile.write_text(
        'name = "x"\narchitecture = "resnet18"\nweights = "w.pth"\n'
        'classes = ["a", "b", "c", "d", "e", "f"]\n',
        encoding="utf-8",
    )
    code = run(
        [
            "batch",
            "--profile",
            str(profile),
            "--input",
            str(neu_folder),
            "--output",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "10 classes" in err and "6" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_usage_errors(tiny_profile: Path, neu_folder: Path, tmp_path: Path, capsys) -> None:
    def batch(source: Path, output: Path, *extra: str) -> int:
        args = ["batch", "--profile", str(tiny_profile), "--input", str(source)]
        return run([*args, "--output", str(output), *extra])

    assert batch(tmp_path / "nope", tmp_path / "o") == 2
    assert "does not exist" in capsys.readouterr().err
    assert batch(neu_folder, neu_folder / "out") == 2
    assert "inside the input" in capsys.readouterr().err
    assert batch(neu_folder, tmp_path / "o", "--layer", "layer9") == 2
    assert "no layer 'layer9'" in capsys.readouterr().err


def test_target_and_method_options(tiny_profile: Path, neu_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    code = run(
        [
            "batch",
            "--profile",
            str(tiny_profile),
            "--input",
            str(neu_folder / "IMAGES"),
            "--output",
            str(out),
            "--target",
            "scratches",
            "--method",
            "eigencam",
            "--layer",
            "layer3",
        ]
    )
    assert code == 0
    rows = _read_csv(out / "results.csv")
    assert {r["target"] for r in rows} == {"scratches"}
    assert {r["method"] for r in rows} == {"eigencam"} and {r["layer"] for r in rows} == {"layer3"}
    # Annotations one level above the scanned IMAGES/ folder are still found.
    assert all(r["pointing_hit"] in ("0", "1") for r in rows)


def test_layers_command(tiny_profile: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["layers", "--profile", str(tiny_profile)]) == 0
    table = capsys.readouterr().out
    marked = [line.split()[0] for line in table.splitlines() if "<- default" in line]
    assert marked == ["layer4"]
    assert "Linear" in table and "512x2x2" in table


def test_demo_data_command(tmp_path: Path) -> None:
    assert run(["demo-data", "--output", str(tmp_path / "d"), "--count", "7", "--seed", "5"]) == 0
    images = sorted((tmp_path / "d" / "IMAGES").glob("*.jpg"))
    annotations = sorted((tmp_path / "d" / "ANNOTATIONS").glob("*.xml"))
    assert len(images) == len(annotations) == 7
    assert _decode(images[0]).shape == (200, 200)


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from engine.session import Session, SessionContext

    path = tmp_path / "s.sqlite"
    context = SessionContext(tmp_path, tmp_path / "p.toml", "abc", "layer3", "gradcam")
    with Session.open(path, context) as session:
        session.add_images(["a.jpg", "b.jpg"])
        session.record_result("a.jpg", "crazing", 0.9, ground_truth="crazing", pointing_hit=True)
        session.record_result("b.jpg", "patches", 0.6, ground_truth="crazing", pointing_hit=False)
        session.set_verdict("a.jpg", 1)
        session.set_verdict("b.jpg", 3, corrected="crazing", note="looks at <the edge>")
    assert run(["report", str(path), "--output", str(tmp_path / "r")]) == 0
    rows = _read_csv(tmp_path / "r" / "report.csv")
    assert [(r["path"], r["verdict"], r["note"]) for r in rows] == [
        ("a.jpg", "1", ""),
        ("b.jpg", "3", "looks at <the edge>"),
    ]
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "looks at &lt;the edge&gt;" in html and "data:image/png;base64," in html
    (tmp_path / "junk.sqlite").write_bytes(b"not a session at all")
    assert run(["report", str(tmp_path / "junk.sqlite"), "--output", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "junk.sqlite" in err and "Traceback" not in err


def _sigmoid_profile(tmp_path: Path) -> Path:
    """A one-output resnet18 (a binary defect detector) with Keras-style map and overlay."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=1).state_dict(), tmp_path / "bin.pth")
    profile = tmp_path / "binary.toml"
    profile.write_text(
        'architecture = "resnet18"\nweights = "bin.pth"\n[preprocess]\nsize = [64, 64]\n'
        '[cam]\nlayer = "layer3"\nnormalize = "max"\nblend = "additive"\nalpha = 0.4\n'
        '[output]\nactivation = "sigmoid"\n',
        encoding="utf-8",
    )
    return profile


def test_sigmoid_profile_batch(neu_folder: Path, tmp_path: Path, capsys) -> None:
    from engine.cam import CamEngine
    from engine.images import load_image
    from engine.profile import load_profile
    from engine.render import render_heatmap

    profile = _sigmoid_profile(tmp_path)
    out = tmp_path / "o"
    args = ["batch", "--profile", str(profile), "--input", str(neu_folder / "IMAGES")]
    assert run([*args, "--output", str(out), "--save-raw", "--device", "cpu"]) == 0
    assert "note: inferred 1 classes from checkpoint head fc.weight" in capsys.readouterr().err
    rows = _read_csv(out / "results.csv")
    engine = CamEngine.from_profile(load_profile(profile), "cpu")
    for row in rows[:3]:
        image = load_image(neu_folder / "IMAGES" / row["path"])
        with torch.no_grad():
            p = float(torch.sigmoid(engine.model(engine.prepare([image]))[0, 0]))
        predicted = "positive" if p > 0.5 else "negative"
        assert row["predicted"] == predicted and row["target"] == predicted
        assert float(row["confidence"]) == pytest.approx(max(p, 1 - p), abs=1e-4)
        top = dict(item.split(":") for item in row["top5"].split(";"))
        assert set(top) == {"negative", "positive"}
        assert float(top["positive"]) == pytest.approx(p, abs=1e-4)
        # normalize = "max": divided by the maximum, never shifted; blend = "additive".
        stem = out / Path(row["path"]).with_suffix("")
        cam = np.load(stem.with_name(stem.name + "_cam.npy"))
        assert cam.max() == pytest.approx(1.0) and cam.min() >= 0.0
        overlay = _decode(stem.with_name(stem.name + "_overlay.png"))[:, :, ::-1]
        rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
        expected = np.clip(
            np.rint(render_heatmap(cam, "jet").astype(np.float64) * 0.4 + rgb), 0, 255
        )
        np.testing.assert_allclose(overlay, expected, atol=1)


class TupleNet(torch.nn.Module):
    """A model returning (logits, aux logits), pickled whole (trust_pickle)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.fc(self.features(x).mean(dim=(2, 3)))
        return logits, logits[:, :2]


def test_tuple_output_note_is_printed_once(neu_folder: Path, tmp_path: Path, capsys) -> None:
    torch.save(TupleNet(), tmp_path / "tuple.pt")
    profile = tmp_path / "tuple.toml"
    classes = ", ".join(f'"{c}"' for c in NEU)
    profile.write_text(
        f'architecture = "resnet18"\nweights = "tuple.pt"\ntrust_pickle = true\n'
        f'classes = [{classes}]\n[preprocess]\nsize = [32, 32]\n[cam]\nlayer = "features"\n',
        encoding="utf-8",
    )
    args = ["batch", "--profile", str(profile), "--input", str(neu_folder / "IMAGES")]
    assert run([*args, "--output", str(tmp_path / "o"), "--batch-size", "4"]) == 0
    err = capsys.readouterr().err
    expected = (
        "note: the model returns a tuple of 2 (tensor (4, 6), tensor (4, 2)); explained "
        "element 0; set [output] logits in the profile to choose"
    )
    assert err.count(expected) == 1
    assert "used the pickled TupleNet as is" in err
    assert {r["status"] for r in _read_csv(tmp_path / "o" / "results.csv")} == {"ok"}
