"""Class-average maps, heat on the border, per-class metric means and their report section."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.class_average import (
    ClassAverages,
    border_area,
    border_share,
    class_average_figure,
    metric_means,
)
from engine.cli import run
from engine.report import class_trust_section


def test_means_per_ground_truth_and_predicted_class() -> None:
    averages = ClassAverages((4, 4))
    a, b = np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32)
    a[:4, :4] = 1.0
    averages.add("scratches", "scratches", a)
    averages.add("scratches", "patches", b)
    averages.add(None, "patches", b)
    means = averages.means()
    assert list(means) == [
        ("ground truth", "scratches"),
        ("predicted", "patches"),
        ("predicted", "scratches"),
    ]
    expected = (cv2.resize(a, (4, 4), interpolation=cv2.INTER_AREA) + 1.0) / 2
    np.testing.assert_allclose(means[("ground truth", "scratches")], expected)
    np.testing.assert_allclose(means[("predicted", "patches")], np.ones((4, 4)))
    assert averages.counts[("predicted", "patches")] == 2
    figure = class_average_figure(averages)
    assert figure is not None and figure.dtype == np.uint8
    assert class_average_figure(ClassAverages((4, 4))) is None


def test_border_share_shows_heat_piled_on_the_corners() -> None:
    corner = np.zeros((16, 16))
    corner[:2, :2] = 1.0
    assert border_share(corner) == 1.0
    assert border_share(np.ones((16, 16))) == pytest.approx(border_area((16, 16)))
    assert border_area((16, 16)) == pytest.approx(1 - 12 * 12 / 256)
    centre = np.zeros((16, 16))
    centre[6:10, 6:10] = 1.0
    assert border_share(centre) == 0.0 and border_share(np.zeros((16, 16))) == 0.0


def test_metric_means_per_ground_truth_class() -> None:
    rows = [
        {"status": "ok", "ground_truth": "a", "deletion_auc": "0.2", "road_morf": ""},
        {"status": "ok", "ground_truth": "a", "deletion_auc": "0.4", "road_morf": "-0.5"},
        {"status": "error", "ground_truth": "a", "deletion_auc": "9"},
        {"status": "ok", "ground_truth": "", "deletion_auc": "0.1"},
    ]
    means = metric_means(rows, ["road_morf", "deletion_auc"])
    assert means == {
        "": {"deletion_auc": 0.1},
        "a": {"deletion_auc": 0.30000000000000004, "road_morf": -0.5},
    }


def test_report_section_lists_classes_border_heat_and_metric_means() -> None:
    averages = ClassAverages((8, 8))
    averages.add("crazing", "crazing", np.ones((8, 8), np.float32))
    html = class_trust_section(averages, {"crazing": {"deletion_auc": 0.25}}, ["deletion_auc"])
    assert "<h2>Where the model looks, per class</h2>" in html
    assert "<td>crazing</td><td>1</td><td>0.438</td><td>0.438</td>" in html
    assert "<h2>Faithfulness per class (means)</h2>" in html and "<td>0.250</td>" in html
    assert class_trust_section(ClassAverages((8, 8)), {}, []) == ""


def test_batch_class_averages(tiny_profile, neu_folder, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["--profile", str(tiny_profile), "--input", str(neu_folder), "--output", str(out)]
    assert run(["batch", *args, "--device", "cpu", "--class-averages"]) == 0
    figure = cv2.imread(str(out / "class_averages.png"))
    assert figure is not None and figure.shape[1] > 160
    html = (out / "class_summary.html").read_text(encoding="utf-8")
    assert "<td>ground truth</td><td>crazing</td><td>2</td>" in html


def test_batch_class_averages_refuses_resume(tiny_profile, neu_folder, tmp_path, capsys) -> None:
    # A resumed run skips the finished images' maps: its averages would hold only the new ones
    # (all kept: an empty class_summary.html over the earlier one).
    out = tmp_path / "out"
    args = ["--profile", str(tiny_profile), "--input", str(neu_folder), "--output", str(out)]
    assert run(["batch", *args, "--device", "cpu", "--class-averages"]) == 0
    html = (out / "class_summary.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert run(["batch", *args, "--device", "cpu", "--class-averages", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --class-averages needs every image's map") and "\n" not in err
    assert (out / "class_summary.html").read_text(encoding="utf-8") == html


def test_summary_lines_say_border_heat_and_metric_means() -> None:
    from engine.class_average import summary_lines

    averages = ClassAverages((8, 8))
    corner = np.zeros((8, 8), np.float32)
    corner[0, 0] = 1.0
    averages.add("a", "a", corner)
    lines = summary_lines(averages, {"a": {"deletion_auc": 0.25}, "": {}}, ["deletion_auc"])
    assert lines == [
        "heat on the border (the border is 44% of the area):",
        "  ground truth a (n=1): 100%",
        "  predicted a (n=1): 100%",
        "a: deletion_auc +0.250",
    ]
