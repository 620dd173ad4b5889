"""The sanity check: the demo's Grad-CAM changes when randomised, an edge map is flagged."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.cam import CamEngine
from engine.cli import run
from engine.images import load_image
from engine.profile import demo_profile_path, load_profile
from engine.resources import resource_path
from engine.sanity import (
    SANITY_COLUMNS,
    cascade_stages,
    engine_maps,
    run_sanity,
    spearman,
    ssim,
)
from tests.conftest import TinyNet, engine_records


@pytest.fixture(scope="module")
def demo_engine() -> CamEngine:
    return CamEngine.from_profile(load_profile(demo_profile_path()), "cpu")


def _demo_image() -> dict[str, np.ndarray]:
    path = resource_path("samples", "IMAGES", "scratches_1.jpg")
    return {"scratches_1.jpg": load_image(path)}


def _edge_map(engine: CamEngine, images, _targets) -> np.ndarray:
    """A 'method' that never looks at the weights: the image's gradient magnitude."""
    height, width = engine.size
    out = []
    for image in images:
        pixels = cv2.resize(image, (width, height))
        gray = np.float32(pixels if pixels.ndim == 2 else pixels.mean(axis=2))
        edges = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        out.append(edges / edges.max())
    return np.stack(out)


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.clone() for t in model.state_dict().values()]


def test_demo_gradcam_changes_when_the_weights_are_randomised(demo_engine) -> None:
    before = _weights(demo_engine.model)
    result = run_sanity(demo_engine, _demo_image(), engine_maps("gradcam", "layer3"), seed=0)
    after = _weights(demo_engine.model)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))  # a copy was used
    assert result.stage_names[0] == "fc" and result.stage_names[-1] == "conv1"
    assert len(result.rows) == len(result.stage_names) == 11
    final = result.rows[-1]
    assert final.spearman < 0.5 and final.ssim < 0.5 and not final.flat
    assert not result.flagged
    maps = result.maps["scratches_1.jpg"]
    assert maps.shape == (12, *demo_engine.size)
    assert np.abs(maps[-1] - maps[0]).mean() > 0.1


def test_an_edge_map_that_ignores_the_weights_is_flagged(demo_engine) -> None:
    result = run_sanity(demo_engine, _demo_image(), _edge_map, description="the edge map")
    assert result.flagged
    assert {row.spearman for row in result.rows} == {1.0}
    assert result.message == (
        "the edge map barely changes when every weight is random (mean Spearman 1.00 with the "
        "original): it shows the image more than what the model learned; do not trust it"
    )


def test_the_cascade_is_seeded_and_randomises_every_weight() -> None:
    torch.manual_seed(0)
    model = TinyNet(classes=3).eval()
    engine = CamEngine(model, ["a", "b", "c"], *engine_records((32, 32), layer="features"), "cpu")
    images = {"a": np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    maps = engine_maps("gradcam", "features")
    first, second = run_sanity(engine, images, maps, seed=4), run_sanity(engine, images, maps, 4)
    assert first.rows == second.rows
    assert run_sanity(engine, images, maps, seed=5).rows != first.rows
    stages = cascade_stages(model)
    assert [stage.name for stage in stages] == ["head", "features.2", "features.0"]


def test_the_cascade_opens_a_wrapper_around_the_model() -> None:
    # A Hugging Face folder's model is an adapter whose one child holds every weight.
    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = TinyNet(classes=3)
            self.flatten = torch.nn.Identity()

    names = [stage.name for stage in cascade_stages(Wrapper())]
    assert names == ["model.head", "model.features.2", "model.features.0"]


def test_a_flat_map_gives_spearman_zero_never_nan() -> None:
    flat, other = np.zeros((8, 8)), np.random.default_rng(0).random((8, 8))
    assert spearman(flat, other) == 0.0 and spearman(other, flat) == 0.0
    assert np.isfinite(ssim(flat, other))
    assert spearman(other, other) == pytest.approx(1.0) and ssim(other, other) == pytest.approx(1)
    assert spearman(other, -other) == pytest.approx(-1.0)


def test_sanity_command_writes_the_csv_and_the_strip(tiny_profile, neu_folder, tmp_path) -> None:
    image = neu_folder / "IMAGES" / "crazing_1.jpg"
    out = tmp_path / "out"
    args = ["--profile", str(tiny_profile), "--input", str(image), "--output", str(out)]
    code = run(["sanity", *args, "--device", "cpu", "--seed", "1"])
    assert code == 0
    with (out / "sanity.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == SANITY_COLUMNS
    assert [r["randomised"] for r in rows][:2] == ["fc", "layer4.1"]
    assert rows[-1]["randomised"] == "conv1" and rows[-1]["stage"] == str(len(rows))
    assert {r["image"] for r in rows} == {"crazing_1.jpg"}
    assert all(-1 <= float(r["spearman"]) <= 1 and r["flat"] in ("0", "1") for r in rows)
    strip = cv2.imread(str(out / "crazing_1_sanity.png"))
    assert strip is not None and strip.shape[1] > 12 * 64


def test_sanity_command_needs_images(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert run(["sanity", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no images found in '{tmp_path / 'empty'}'"


def test_a_cancelled_cascade_stops_between_stages() -> None:
    from engine.errors import CamCancelled

    torch.manual_seed(0)
    engine = CamEngine(TinyNet(classes=3).eval(), ["a", "b", "c"], *engine_records((32, 32)), "cpu")
    images = {"a": np.zeros((32, 32, 3), np.uint8)}
    with pytest.raises(CamCancelled):
        run_sanity(engine, images, engine_maps("gradcam", "features"), cancel=lambda: True)


def test_sanity_output_inside_the_input_takes_the_option_its_refusal_names(
    tiny_profile, neu_folder, tmp_path, capsys
) -> None:
    folder = tmp_path / "in"  # a copy: neu_folder is shared by the session's tests
    shutil.copytree(neu_folder / "IMAGES", folder)
    inside = folder / "sanity-out"
    args = ["--profile", str(tiny_profile), "--input", str(folder), "--output", str(inside)]
    assert run(["sanity", *args, "--device", "cpu"]) == 2
    assert "pass --allow-inside-input" in capsys.readouterr().err
    assert run(["sanity", *args, "--device", "cpu", "--allow-inside-input"]) == 0
    assert (inside / "sanity.csv").is_file()
