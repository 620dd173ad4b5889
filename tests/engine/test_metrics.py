"""Faithfulness metrics: equal to pytorch-grad-cam's, deletion/insertion on a known model."""

from __future__ import annotations

import csv
import sys

import cv2
import numpy as np
import pytest
import torch
import torchvision
from pytorch_grad_cam.metrics import road
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn

from engine.cam import CamEngine
from engine.errors import InspectorError
from engine.metrics import metric_names, parse_metrics
from engine.metrics.faithfulness import (
    ROAD_PERCENTILES,
    MetricBatch,
    MetricSettings,
    evaluate,
    pixel_order,
)
from engine.metrics.imputation import impute
from engine.metrics.measure import measure
from tests.conftest import TinyNet, engine_records

SIZE = (48, 48)


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8) for _ in range(count)]


def _smooth_maps(count: int, seed: int = 1) -> np.ndarray:
    """Maps without ties (percentile thresholds are then unambiguous), in [0, 1]."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(count):
        noise = cv2.GaussianBlur(rng.random(SIZE).astype(np.float32), (0, 0), 4)
        maps.append((noise - noise.min()) / (noise.max() - noise.min()))
    return np.float32(maps)


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3).eval()


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet(classes=3).eval()


MODELS = {"tinynet": _tiny, "resnet18": _resnet}


def _engine(model: nn.Module) -> CamEngine:
    return CamEngine(model, ["a", "b", "c"], *engine_records(SIZE), "cpu")


def _batch(engine: CamEngine, images, maps, targets, names, noise=0.0) -> MetricBatch:
    return MetricBatch(
        inputs=engine.prepare_nchw(images),
        maps=maps,
        targets=torch.tensor(targets),
        scorer=engine.target_probabilities,
        settings=MetricSettings(tuple(names), road_noise=noise),
    )


class _NoiselessImputer(road.NoisyLinearImputer):
    """pytorch-grad-cam's imputer as ``NoisyLinearImputer(noise=0)``, wherever ROAD makes one."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        super().__init__(noise=0.0)


@pytest.mark.parametrize("arch", MODELS)
def test_road_and_confidence_change_equal_pytorch_grad_cam(arch, monkeypatch) -> None:
    engine = _engine(MODELS[arch]())
    images, maps, targets = _images(3), _smooth_maps(3), [0, 2, 1]
    maps[2] = np.clip(maps[2] * 2 - 1, 0, None)  # half zeros, as a ReLU'd Grad-CAM has
    ours = evaluate(_batch(engine, images, maps, targets, metric_names()[:4]))

    monkeypatch.setattr(road, "NoisyLinearImputer", _NoiselessImputer)
    percentiles = list(ROAD_PERCENTILES)
    inputs = engine.prepare_nchw(images).contiguous()
    ref_targets = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    model = engine.model
    reference = {
        "road_morf": road.ROADMostRelevantFirstAverage(percentiles),
        "road_lerf": road.ROADLeastRelevantFirstAverage(percentiles),
        "road_combined": road.ROADCombined(percentiles),
        "confidence_change": CamMultImageConfidenceChange(),
    }
    for name, metric in reference.items():
        expected = metric(inputs, maps, ref_targets, model)
        got = np.float32([row[name] for row in ours])
        np.testing.assert_allclose(got, np.ravel(expected), atol=1e-3, err_msg=name)
    # Not a vacuous comparison: the images do move the probability.
    assert max(abs(row["road_morf"]) for row in ours) > 1e-3


def test_imputation_equals_the_authors_system() -> None:
    rng = np.random.default_rng(3)
    image = rng.standard_normal((3, 20, 24)).astype(np.float32)
    known = rng.random((20, 24)) < 0.4
    expected = road.NoisyLinearImputer(noise=0)(
        torch.from_numpy(image), torch.from_numpy(known.astype(np.float32))
    ).numpy()
    np.testing.assert_allclose(impute(image, known), expected, atol=1e-5)
    np.testing.assert_array_equal(impute(image, known)[:, known], image[:, known])


def test_imputation_with_nothing_kept_is_the_mean_not_nan() -> None:
    image = np.ones((3, 8, 8), np.float32)
    out = impute(image, np.zeros((8, 8), bool))
    np.testing.assert_array_equal(out, np.zeros_like(image))


def test_road_noise_is_seeded_and_changes_the_values() -> None:
    engine = _engine(_tiny())
    images, maps = _images(2), _smooth_maps(2)
    names = ("road_morf", "road_lerf")

    def run(noise: float, seed: int = 0) -> list[dict[str, float]]:
        batch = _batch(engine, images, maps, [0, 1], names, noise)
        batch.settings = MetricSettings(names, road_noise=noise, seed=seed)
        return evaluate(batch)

    assert run(0.5) == run(0.5)
    assert run(0.5) != run(0.0)
    assert run(0.5, seed=1) != run(0.5, seed=0)


class QuadrantNet(nn.Module):
    """Class 0's logit reads only the mean of the input's top-left quadrant; class 1's is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2] // 2, x.shape[3] // 2
        score = 4 * x[:, :, :height, :width].mean(dim=(1, 2, 3)) - 6
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def _quadrant_map(row: int, col: int) -> np.ndarray:
    cam = np.zeros(SIZE, np.float32)
    h, w = SIZE[0] // 2, SIZE[1] // 2
    cam[row * h : (row + 1) * h, col * w : (col + 1) * w] = 1.0
    return cam + np.linspace(0, 0.1, cam.size, dtype=np.float32).reshape(SIZE)


def test_deletion_of_the_quadrant_the_model_reads_drops_the_probability_fastest() -> None:
    model = QuadrantNet()
    engine = CamEngine(model, ["read", "other"], *engine_records(SIZE, layer=None), "cpu")
    image = np.full((*SIZE, 3), 40, np.uint8)
    image[: SIZE[0] // 2, : SIZE[1] // 2] = 230
    maps = np.stack([_quadrant_map(r, c) for r in (0, 1) for c in (0, 1)])
    names = ("deletion_auc", "insertion_auc")
    rows = evaluate(_batch(engine, [image] * 4, maps, [0] * 4, names))
    deletion = [row["deletion_auc"] for row in rows]
    insertion = [row["insertion_auc"] for row in rows]
    assert deletion[0] < min(deletion[1:]) - 0.05
    assert insertion[0] > max(insertion[1:]) + 0.05


def _reference_curve(engine, image, cam, target, start, fill) -> float:
    """Deletion/insertion done one step at a time, the plain way."""
    x = engine.prepare_nchw([image])[0]
    flat = cam.reshape(-1)
    order = sorted(range(flat.size), key=lambda i: (-flat[i], i))
    probs = []
    for step in range(33):
        chosen = np.zeros(flat.size, bool)
        chosen[order[: step * flat.size // 32]] = True
        mask = torch.from_numpy(chosen.reshape(cam.shape))
        perturbed = torch.where(mask, fill(x), start(x))
        probs.append(float(engine.target_probabilities(perturbed[None], torch.tensor([target]))))
    return float(np.trapezoid(probs, dx=1 / 32))


@pytest.mark.parametrize("arch", MODELS)
def test_deletion_and_insertion_equal_a_step_by_step_reference(arch) -> None:
    from engine.metrics.faithfulness import blurred

    engine = _engine(MODELS[arch]())
    image, cam = _images(1, seed=5)[0], _smooth_maps(1, seed=6)[0]
    cam[:4, :4] = 0.5  # ties: broken in row-major order
    rows = evaluate(_batch(engine, [image], cam[None], [1], ("deletion_auc", "insertion_auc")))
    deletion = _reference_curve(engine, image, cam, 1, lambda x: x, torch.zeros_like)
    insertion = _reference_curve(engine, image, cam, 1, blurred, lambda x: x)
    assert rows[0]["deletion_auc"] == pytest.approx(deletion, abs=1e-5)
    assert rows[0]["insertion_auc"] == pytest.approx(insertion, abs=1e-5)


def test_pixel_order_breaks_ties_in_row_major_order() -> None:
    ranks = pixel_order(np.array([[0.0, 1.0], [1.0, 0.0]], np.float32))
    np.testing.assert_array_equal(ranks, [2, 0, 1, 3])


def test_measure_uses_the_maps_at_input_size_and_the_target(tiny_net) -> None:
    engine = _engine(tiny_net)
    images = [np.zeros((30, 70, 3), np.uint8) + 90, _images(1)[0]]
    results = engine.explain(images, target=2)
    rows = measure(engine, images, results, MetricSettings(metric_names(), road_noise=0.0))
    assert [set(row) for row in rows] == [set(metric_names())] * 2
    assert all(np.isfinite(list(row.values())).all() for row in rows)
    combined = rows[1]["road_combined"]
    assert combined == pytest.approx((rows[1]["road_lerf"] - rows[1]["road_morf"]) / 2, abs=1e-6)


def test_parse_metrics() -> None:
    assert parse_metrics("all") == metric_names()
    assert parse_metrics("deletion_auc, road_morf") == ("road_morf", "deletion_auc")
    with pytest.raises(InspectorError, match="unknown metric 'nope'"):
        parse_metrics("nope")


def test_batch_adds_metric_columns_equal_to_measure(tmp_path) -> None:
    from engine.batch import CSV_COLUMNS, BatchRunner
    from engine.batch_options import BatchOptions
    from engine.dataset import scan_images
    from engine.demo_data import write_neu_det
    from engine.images import load_image
    from tests.conftest import NEU

    torch.manual_seed(0)
    engine = CamEngine(TinyNet(classes=6), NEU, *engine_records((32, 32)), "cpu")
    write_neu_det(tmp_path / "in", 4, seed=2)
    records = scan_images(tmp_path / "in", NEU)
    options = BatchOptions(
        output=tmp_path / "out", batch_size=3, metrics=metric_names(), road_noise=0.01, seed=3
    )
    BatchRunner(engine, options).run(records)
    with (tmp_path / "out" / "results.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS + metric_names()
    images = [load_image(record.path) for record in records]
    expected = measure(
        engine, images, engine.explain(images), MetricSettings(metric_names(), 0.01, 3)
    )
    for row, values in zip(rows, expected, strict=True):
        for name, value in values.items():
            assert float(row[name]) == pytest.approx(value, abs=1e-4), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "road_morf,nope"], "error: unknown metric 'nope': use one of road_morf,"),
        (["--road-noise", "-1"], "error: --road-noise must be 0 or more, got -1.0"),
    ],
)
def test_batch_metric_options_are_checked(args, message, tmp_path, capsys) -> None:
    from engine.cli import run

    assert run(["batch", "--output", str(tmp_path / "o"), *args]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_road_without_scipy_says_how_to_install_it(monkeypatch) -> None:
    for name in ("scipy", "scipy.sparse", "scipy.sparse.linalg"):
        monkeypatch.setitem(sys.modules, name, None)
    known = np.ones((4, 4), bool)
    known[1, 1] = False
    with pytest.raises(InspectorError) as info:
        impute(np.zeros((3, 4, 4), np.float32), known)
    assert str(info.value) == (
        "ROAD needs SciPy for its sparse solve: pip install 'gradcam-inspector[metrics]' "
        "(or choose other metrics)"
    )


def test_metrics_that_need_scipy_are_named_before_a_run(monkeypatch) -> None:
    from engine.metrics import registry

    real = registry.importlib.util.find_spec
    monkeypatch.setattr(
        registry.importlib.util, "find_spec", lambda name: None if name == "scipy" else real(name)
    )
    assert registry.available_metrics() == ("confidence_change", "deletion_auc", "insertion_auc")
    with pytest.raises(InspectorError) as info:
        registry.require_metrics(("deletion_auc", "road_lerf"))
    assert str(info.value) == (
        "road_lerf needs scipy: pip install 'gradcam-inspector[metrics]' (or choose other metrics)"
    )
    assert registry.require_metrics(("deletion_auc",)) == ("deletion_auc",)


class _ChannelsLast(nn.Module):
    """The same network taking (B, H, W, C) inputs, as a Keras export does."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2))


def test_metrics_of_an_nhwc_model_equal_those_of_the_nchw_one() -> None:
    net = _tiny()
    images = _images(2)
    nchw = _engine(net)
    nhwc = CamEngine(
        _ChannelsLast(net), ["a", "b", "c"], *engine_records(SIZE, layout="nhwc"), "cpu"
    )
    settings = MetricSettings(metric_names(), road_noise=0.01, seed=2)
    expected = measure(nchw, images, nchw.explain(images, layer="features"), settings)
    got = measure(nhwc, images, nhwc.explain(images, layer="net.features"), settings)
    for want, have in zip(expected, got, strict=True):
        assert have == pytest.approx(want, abs=1e-4)


def test_metrics_of_a_gray_binary_sigmoid_model() -> None:
    from engine.profile import OutputSpec

    torch.manual_seed(0)
    net = TinyNet(classes=1, in_channels=1).eval()
    records = engine_records(SIZE, (0.5,), (0.25,), output=OutputSpec(activation="sigmoid"))
    engine = CamEngine(net, ["defect"], *records, "cpu")
    images = _images(2)
    results = engine.explain(images, target=1)
    rows = measure(engine, images, results, MetricSettings(metric_names(), road_noise=0.0))
    x = engine.prepare_nchw(images)
    maps = torch.from_numpy(np.stack([r.cam for r in results]))  # image size == input size
    with torch.no_grad():
        before = torch.sigmoid(net(x))[:, 0]
        after = torch.sigmoid(net(x * maps[:, None]))[:, 0]
    for row, change in zip(rows, (after - before).tolist(), strict=True):
        assert row["confidence_change"] == pytest.approx(change, abs=1e-5)
        assert all(np.isfinite(v) for v in row.values())
