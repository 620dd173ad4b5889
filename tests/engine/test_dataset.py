"""Tests for engine.dataset: folder scanning, ground truth from names and VOC annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.dataset import (
    NEU_CLASSES,
    ImageRecord,
    load_boxes,
    natural_key,
    read_voc,
    scan_images,
)
from engine.errors import InspectorError
from engine.localization import Box

CIFAR10 = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def _touch(root: Path, *rel_paths: str) -> None:
    for rel in rel_paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def _voc_xml(filename: str, objects: list[tuple[str, int, int, int, int, int]]) -> str:
    """VOC XML text; each object is (name, xmin, ymin, xmax, ymax, difficult)."""
    parts = [
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, x0, y0, x1, y1, difficult in objects
    ]
    return (
        f"<annotation><folder>cr</folder><filename>{filename}</filename><source>"
        "<database>NEU-DET</database></source><size><width>200</width><height>200</height>"
        f"<depth>1</depth></size><segmented>0</segmented>{''.join(parts)}</annotation>"
    )


def _write_voc(path: Path, objects: list[tuple[str, int, int, int, int, int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # NEU-DET's <filename> sometimes lacks the extension: pairing must not rely on it.
    path.write_text(_voc_xml(path.stem, objects))
    return path


def _by_rel(records: list[ImageRecord]) -> dict[str, ImageRecord]:
    return {r.rel_path.as_posix(): r for r in records}


def test_natural_key_orders_numbers_by_value_and_ignores_case() -> None:
    names = ["crazing_10", "Crazing_2", "crazing_1", "a", "B", "crazing_02x"]
    assert sorted(names, key=natural_key) == [
        "a",
        "B",
        "crazing_1",
        "Crazing_2",
        "crazing_02x",
        "crazing_10",
    ]


def test_scan_sorts_naturally_by_relative_path(tmp_path: Path) -> None:
    _touch(tmp_path, "b/x_1.png", "a/x_10.png", "a/x_2.png", "a/sub/z.png", "A_3.png")
    rels = [r.rel_path.as_posix() for r in scan_images(tmp_path)]
    assert rels == ["a/sub/z.png", "a/x_2.png", "a/x_10.png", "A_3.png", "b/x_1.png"]


def test_record_fields(tmp_path: Path) -> None:
    _touch(tmp_path, "crazing/x.bmp")
    [record] = scan_images(tmp_path)
    assert record.path == tmp_path / "crazing" / "x.bmp"
    assert record.rel_path == Path("crazing/x.bmp")
    assert record.ground_truth == "crazing"
    assert record.annotation is None


def test_neu_cls_prefixes(tmp_path: Path) -> None:
    _touch(tmp_path, "Cr_1.bmp", "in_2.bmp", "Pa_3.bmp", "PS_4.bmp", "rs_5.BMP", "Sc_6.bmp")
    truth = {r.rel_path.name: r.ground_truth for r in scan_images(tmp_path)}
    assert truth == {
        "Cr_1.bmp": "crazing",
        "in_2.bmp": "inclusion",
        "Pa_3.bmp": "patches",
        "PS_4.bmp": "pitted_surface",
        "rs_5.BMP": "rolled-in_scale",
        "Sc_6.bmp": "scratches",
    }


def test_neu_det_names(tmp_path: Path) -> None:
    _touch(tmp_path, "rolled-in_scale_12.jpg", "pitted_surface_3.jpg", "crazing_1.jpg")
    truth = {r.rel_path.name: r.ground_truth for r in scan_images(tmp_path)}
    assert truth == {
        "rolled-in_scale_12.jpg": "rolled-in_scale",
        "pitted_surface_3.jpg": "pitted_surface",
        "crazing_1.jpg": "crazing",
    }


def test_class_per_subfolder_nearest_first(tmp_path: Path) -> None:
    _touch(tmp_path, "train/crazing/001.bmp", "scratches/deep/patches/002.bmp", "misc/003.bmp")
    truth = {r.rel_path.as_posix(): r.ground_truth for r in scan_images(tmp_path)}
    assert truth == {
        "misc/003.bmp": None,
        "scratches/deep/patches/002.bmp": "patches",
        "train/crazing/001.bmp": "crazing",
    }


def test_capitalised_repack_folders(tmp_path: Path) -> None:
    folders = ["Crazing", "Inclusion", "Patches", "Pitted", "Rolled", "Scratches"]
    _touch(tmp_path, *(f"{name}/img_1.jpg" for name in folders))
    truth = {r.rel_path.parts[0]: r.ground_truth for r in scan_images(tmp_path)}
    assert truth == dict(zip(folders, NEU_CLASSES, strict=True))


def test_scanned_folder_name_counts_as_class_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "Pitted/img_1.jpg")
    [record] = scan_images(tmp_path / "Pitted")
    assert record.rel_path == Path("img_1.jpg")
    assert record.ground_truth == "pitted_surface"


def test_file_name_wins_over_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "crazing/Sc_4.bmp")
    [record] = scan_images(tmp_path)
    assert record.ground_truth == "scratches"


def test_generic_class_list(tmp_path: Path) -> None:
    _touch(tmp_path, "cat_12.png", "dog/0001.png", "Automobile/x.png", "Cr_1.png", "other_3.png")
    truth = {r.rel_path.as_posix(): r.ground_truth for r in scan_images(tmp_path, CIFAR10)}
    assert truth == {
        "Automobile/x.png": "automobile",
        "cat_12.png": "cat",
        "Cr_1.png": None,  # NEU aliases only apply when the NEU class is in the list
        "dog/0001.png": "dog",
        "other_3.png": None,
    }


def test_neu_alias_needs_the_class_in_the_list(tmp_path: Path) -> None:
    _touch(tmp_path, "Cr_1.bmp", "PS_2.bmp", "Pitted/x.bmp")
    truth = {r.rel_path.as_posix(): r.ground_truth for r in scan_images(tmp_path, ["crazing"])}
    assert truth == {"Cr_1.bmp": "crazing", "Pitted/x.bmp": None, "PS_2.bmp": None}


def test_ambiguous_first_word_is_not_an_alias(tmp_path: Path) -> None:
    _touch(tmp_path, "red/x.png", "red_car/y.png")
    classes = ["red_car", "red_bus"]
    truth = {r.rel_path.as_posix(): r.ground_truth for r in scan_images(tmp_path, classes)}
    assert truth == {"red/x.png": None, "red_car/y.png": "red_car"}


def test_hidden_and_non_image_files_are_skipped(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "a.png",
        "B.JPG",
        "c.TiFf",
        ".hidden.png",
        ".cache/d.png",
        "sub/.e.png",
        "notes.txt",
        "model.pt",
        "annotations/a.xml",
        "noext",
    )
    rels = [r.rel_path.as_posix() for r in scan_images(tmp_path)]
    assert rels == ["a.png", "B.JPG", "c.TiFf"]


def test_scan_single_file(tmp_path: Path) -> None:
    _touch(tmp_path, "scratches/Sc_7.bmp", "scratches/Sc_8.bmp")
    [record] = scan_images(str(tmp_path / "scratches" / "Sc_7.bmp"))
    assert record.rel_path == Path("Sc_7.bmp")
    assert record.path == tmp_path / "scratches" / "Sc_7.bmp"
    assert record.ground_truth == "scratches"


def test_scan_single_file_folder_class(tmp_path: Path) -> None:
    _touch(tmp_path, "Rolled/0042.jpg")
    [record] = scan_images(tmp_path / "Rolled" / "0042.jpg")
    assert record.ground_truth == "rolled-in_scale"


def test_scan_single_non_image_file(tmp_path: Path) -> None:
    _touch(tmp_path, "notes.txt")
    with pytest.raises(InspectorError, match=r"notes\.txt"):
        scan_images(tmp_path / "notes.txt")


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InspectorError, match=r"folder '.*nope' does not exist: choose another"):
        scan_images(missing)


def test_empty_folder(tmp_path: Path) -> None:
    assert scan_images(tmp_path) == []


def test_annotation_beside_images_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "IMAGES/crazing_1.jpg", "IMAGES/crazing_2.jpg")
    xml = _write_voc(tmp_path / "ANNOTATIONS" / "crazing_1.xml", [("crazing", 1, 1, 10, 20, 0)])
    records = _by_rel(scan_images(tmp_path))
    assert records["IMAGES/crazing_1.jpg"].annotation == xml
    assert records["IMAGES/crazing_2.jpg"].annotation is None
    assert load_boxes(records["IMAGES/crazing_1.jpg"]) == (Box(0, 0, 10, 20, "crazing", False),)
    assert load_boxes(records["IMAGES/crazing_2.jpg"]) == ()


def test_annotation_in_ancestor_folder(tmp_path: Path) -> None:
    # Kaggle NEU-DET layout: train/images/<class>/x.jpg and train/annotations/x.xml
    _touch(tmp_path, "train/images/patches/patches_5.jpg")
    xml = _write_voc(tmp_path / "train" / "Annotations" / "patches_5.xml", [])
    [record] = scan_images(tmp_path)
    assert record.annotation == xml
    assert record.ground_truth == "patches"


def test_annotation_nearest_folder_wins(tmp_path: Path) -> None:
    _touch(tmp_path, "a/crazing_1.jpg")
    _write_voc(tmp_path / "annotations" / "crazing_1.xml", [])
    near = _write_voc(tmp_path / "a" / "annotations" / "crazing_1.xml", [])
    [record] = scan_images(tmp_path)
    assert record.annotation == near


def test_annotation_found_when_scanning_images_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "IMAGES/scratches_9.jpg")
    xml = _write_voc(tmp_path / "ANNOTATIONS" / "scratches_9.xml", [])
    [folder_record] = scan_images(tmp_path / "IMAGES")
    [file_record] = scan_images(tmp_path / "IMAGES" / "scratches_9.jpg")
    assert folder_record.annotation == xml
    assert file_record.annotation == xml


def test_read_voc_several_objects_and_difficult(tmp_path: Path) -> None:
    xml = _write_voc(
        tmp_path / "a.xml",
        [("inclusion", 5, 6, 50, 60, 0), ("inclusion", 100, 1, 200, 200, 1)],
    )
    annotation = read_voc(xml)
    assert annotation.width == 200
    assert annotation.height == 200
    assert annotation.boxes == (
        Box(4, 5, 50, 60, "inclusion", False),
        Box(99, 0, 200, 200, "inclusion", True),
    )


def test_read_voc_without_size_and_with_float_coordinates(tmp_path: Path) -> None:
    path = tmp_path / "f.xml"
    path.write_text(
        "<annotation><object><name> scratches </name><bndbox><xmin>1.0</xmin>"
        "<ymin>2</ymin><xmax>3.0</xmax><ymax>4</ymax></bndbox></object></annotation>"
    )
    annotation = read_voc(path)
    assert annotation.width is None
    assert annotation.height is None
    assert annotation.boxes == (Box(0, 1, 3, 4, "scratches", False),)


def test_read_voc_malformed(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text("<annotation><object>")
    with pytest.raises(InspectorError, match=r"broken\.xml.*malformed XML"):
        read_voc(path)


def test_read_voc_bad_number(tmp_path: Path) -> None:
    path = tmp_path / "nan.xml"
    path.write_text(
        "<annotation><object><name>x</name><bndbox><xmin>left</xmin><ymin>2</ymin>"
        "<xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>"
    )
    with pytest.raises(InspectorError, match=r"nan\.xml.*<xmin>"):
        read_voc(path)


def test_scan_ten_thousand_files_without_decoding(tmp_path: Path) -> None:
    # Zero-byte files: any attempt to decode an image or parse an XML would fail.
    images = tmp_path / "IMAGES"
    images.mkdir()
    for i in range(10_000):
        (images / f"{NEU_CLASSES[i % 6]}_{i}.jpg").write_bytes(b"")
    annotations = tmp_path / "ANNOTATIONS"
    annotations.mkdir()
    for i in range(0, 10_000, 2):
        (annotations / f"{NEU_CLASSES[i % 6]}_{i}.xml").write_bytes(b"")
    records = scan_images(tmp_path)
    assert len(records) == 10_000
    assert records[0].rel_path == Path("IMAGES/crazing_0.jpg")
    assert records[1].rel_path == Path("IMAGES/crazing_6.jpg")
    assert sum(r.annotation is not None for r in records) == 5_000
    assert {r.ground_truth for r in records} == set(NEU_CLASSES)
