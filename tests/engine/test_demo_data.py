"""Tests for the deterministic NEU-like demo defect generator and its NEU-DET export."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.demo_data import (
    NEU_CLASSES,
    DemoSample,
    _background_only,
    generate_sample,
    generate_samples,
    voc_xml,
    write_neu_det,
)
from engine.errors import InspectorError
from engine.localization import Box, boxes_mask

SIZE = 200


@pytest.fixture(scope="module")
def samples() -> list[DemoSample]:
    return list(generate_samples(60, seed=3))


def test_classes_are_the_six_neu_classes() -> None:
    assert NEU_CLASSES == (
        "crazing",
        "inclusion",
        "patches",
        "pitted_surface",
        "rolled-in_scale",
        "scratches",
    )


def test_same_seed_and_index_give_identical_pixels() -> None:
    a, b = generate_sample(17, seed=5), generate_sample(17, seed=5)
    assert np.array_equal(a.image, b.image)
    assert a.boxes == b.boxes
    assert a.label == b.label == "scratches"


def test_different_seed_or_index_gives_different_pixels() -> None:
    base = generate_sample(4, seed=0).image
    assert not np.array_equal(base, generate_sample(4, seed=1).image)
    assert not np.array_equal(base, generate_sample(10, seed=0).image)


def test_sample_does_not_depend_on_count_or_start() -> None:
    short = list(generate_samples(3, seed=9))
    long = list(generate_samples(20, seed=9))
    shifted = list(generate_samples(4, seed=9, start=2))
    for a, b in zip(short, long[:3], strict=True):
        assert np.array_equal(a.image, b.image)
    assert [s.index for s in shifted] == [2, 3, 4, 5]
    assert np.array_equal(shifted[0].image, long[2].image)
    assert shifted[3].boxes == long[5].boxes


def test_images_are_200_square_gray_uint8(samples: list[DemoSample]) -> None:
    for sample in samples:
        assert sample.image.shape == (SIZE, SIZE)
        assert sample.image.dtype == np.uint8


def test_classes_cycle_and_are_balanced(samples: list[DemoSample]) -> None:
    assert [s.label for s in samples[:6]] == list(NEU_CLASSES)
    assert all(s.label == NEU_CLASSES[s.index % 6] for s in samples)
    assert Counter(s.label for s in samples) == dict.fromkeys(NEU_CLASSES, 10)


def test_one_to_three_labelled_boxes_inside_the_image(samples: list[DemoSample]) -> None:
    counts = Counter(len(s.boxes) for s in samples)
    assert set(counts) <= {1, 2, 3}
    assert counts[1] > 0 and counts[2] + counts[3] > 0
    for sample in samples:
        for box in sample.boxes:
            assert 0 <= box.x0 < box.x1 <= SIZE
            assert 0 <= box.y0 < box.y1 <= SIZE
            assert box.label == sample.label
            assert not box.difficult


def test_boxes_are_reasonably_sized(samples: list[DemoSample]) -> None:
    longer = np.array([max(b.x1 - b.x0, b.y1 - b.y0) for s in samples for b in s.boxes])
    assert np.mean((longer >= 20) & (longer <= 180)) >= 0.95
    assert longer.max() <= 0.9 * SIZE


def test_background_alone_matches_outside_the_defects() -> None:
    """Pixels that differ from the defect-free background lie in the boxes."""
    for sample in generate_samples(36, seed=1):
        background = _background_only(sample.index, seed=1)
        changed = np.abs(sample.image.astype(np.int16) - background.astype(np.int16)) > 1
        inside = boxes_mask(changed.shape, sample.boxes)
        assert changed.sum() > 150, sample.label
        assert changed[inside].sum() / changed.sum() >= 0.99, sample.label


def test_defects_are_clearly_visible() -> None:
    """The defect differs from the background far more than the background noise does."""
    for sample in generate_samples(36, seed=2):
        background = _background_only(sample.index, seed=2).astype(np.float32)
        delta = np.abs(sample.image.astype(np.float32) - background)
        noise = float(np.std(background - cv2.GaussianBlur(background, (0, 0), 2.0)))
        for box in sample.boxes:
            strongest = np.percentile(delta[box.y0 : box.y1, box.x0 : box.x1], 99)
            assert strongest > 4 * noise, (sample.label, strongest, noise)


def test_boxes_are_tight(samples: list[DemoSample]) -> None:
    """Each box edge touches a changed pixel, so the box is no larger than the defect."""
    tight = 0
    total = 0
    for sample in samples:
        background = _background_only(sample.index, seed=3)
        changed = sample.image != background
        for box in sample.boxes:
            crop = changed[box.y0 : box.y1, box.x0 : box.x1]
            edges = (crop[0].any(), crop[-1].any(), crop[:, 0].any(), crop[:, -1].any())
            tight += all(edges)
            total += 1
    assert tight / total >= 0.95


def test_bad_arguments_raise_inspector_error(tmp_path: Path) -> None:
    with pytest.raises(InspectorError):
        generate_sample(-1)
    with pytest.raises(InspectorError):
        generate_sample(0, size=16)
    with pytest.raises(InspectorError):
        list(generate_samples(-1))
    for count in (0, 100_001):
        with pytest.raises(InspectorError):
            write_neu_det(tmp_path, count)


def test_voc_xml_uses_one_based_inclusive_coordinates() -> None:
    image = np.zeros((SIZE, SIZE), np.uint8)
    boxes = (Box(0, 5, 10, 40, "inclusion"), Box(150, 160, 200, 200, "inclusion"))
    root = ET.fromstring(voc_xml("inclusion_3.jpg", DemoSample(image, "inclusion", boxes, 13)))
    assert root.tag == "annotation"
    assert root.findtext("folder") == "ANNOTATIONS"
    assert root.findtext("filename") == "inclusion_3.jpg"
    assert root.findtext("size/width") == "200"
    assert root.findtext("size/height") == "200"
    assert root.findtext("size/depth") == "1"
    objects = root.findall("object")
    assert [o.findtext("name") for o in objects] == ["inclusion", "inclusion"]
    assert objects[0].findtext("pose") == "Unspecified"
    assert objects[0].findtext("truncated") == "0"
    assert objects[0].findtext("difficult") == "0"
    corners = [
        [int(o.findtext(f"bndbox/{tag}") or -1) for tag in ("xmin", "ymin", "xmax", "ymax")]
        for o in objects
    ]
    assert corners == [[1, 6, 10, 40], [151, 161, 200, 200]]


def _read_voc_boxes(path: Path) -> list[Box]:
    root = ET.parse(path).getroot()
    boxes = []
    for obj in root.findall("object"):
        xmin, ymin, xmax, ymax = (
            int(obj.findtext(f"bndbox/{tag}") or -1) for tag in ("xmin", "ymin", "xmax", "ymax")
        )
        boxes.append(Box(xmin - 1, ymin - 1, xmax, ymax, obj.findtext("name") or ""))
    return boxes


def test_write_neu_det_writes_named_images_and_matching_annotations(tmp_path: Path) -> None:
    out = tmp_path / "démo data"  # non-ASCII path: files go through imencode + write_bytes
    paths = write_neu_det(out, 14, seed=4, quality=100)
    names = [p.name for p in paths]
    assert names[:7] == [
        "crazing_1.jpg",
        "inclusion_1.jpg",
        "patches_1.jpg",
        "pitted_surface_1.jpg",
        "rolled-in_scale_1.jpg",
        "scratches_1.jpg",
        "crazing_2.jpg",
    ]
    assert names[-2:] == ["crazing_3.jpg", "inclusion_3.jpg"]
    assert all(p.parent == out / "IMAGES" for p in paths)
    assert sorted(p.name for p in (out / "ANNOTATIONS").iterdir()) == sorted(
        n.replace(".jpg", ".xml") for n in names
    )
    for index, path in enumerate(paths):
        sample = generate_sample(index, seed=4)
        image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SIZE, SIZE)
        assert image.dtype == np.uint8
        # Quality 100 JPEG is close to, not exactly, the generated pixels.
        assert np.abs(image.astype(np.int16) - sample.image).mean() < 2.0
        note = out / "ANNOTATIONS" / path.with_suffix(".xml").name
        assert ET.parse(note).getroot().findtext("filename") == path.name
        assert _read_voc_boxes(note) == list(sample.boxes)
