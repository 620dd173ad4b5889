"""Tests for engine.render: colormaps, heatmaps, overlays, boxes, colour bars and panels."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine.choices import Colormap
from engine.errors import InspectorError
from engine.localization import Box
from engine.render import (
    BOX_COLOR,
    BOX_INNER_COLOR,
    DIFFICULT_BOX_COLOR,
    RenderStyle,
    cam_to_uint8,
    colormap_lut,
    draw_boxes,
    label_rect,
    render_colorbar,
    render_heatmap,
    render_overlay,
    render_panels,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture
def cam(rng: np.random.Generator) -> np.ndarray:
    return rng.random((48, 64), dtype=np.float32)


def _levels(cam: np.ndarray) -> np.ndarray:
    """The quantisation pytorch-grad-cam's show_cam_on_image uses."""
    return np.uint8(255 * cam)


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# --- colormaps -------------------------------------------------------------------------------


def test_colormap_names_cover_the_required_maps() -> None:
    for name in ("jet", "viridis", "turbo", "inferno", "magma", "hot", "gray"):
        assert name in list(Colormap)
    assert all(name == name.lower() for name in list(Colormap))


@pytest.mark.parametrize("name", list(Colormap))
def test_every_lut_is_256_rgb_uint8(name: str) -> None:
    lut = colormap_lut(name)
    assert lut.shape == (256, 3)
    assert lut.dtype == np.uint8


def test_gray_lut_is_the_identity_ramp() -> None:
    ramp = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(colormap_lut("gray"), np.stack([ramp] * 3, axis=1))


def test_jet_is_red_at_one_and_blue_at_zero_in_rgb() -> None:
    hot = render_heatmap(np.ones((2, 2), np.float32), "jet")[0, 0]
    cold = render_heatmap(np.zeros((2, 2), np.float32), "jet")[0, 0]
    assert hot[0] >= 120 and hot[1] <= 10 and hot[2] <= 10  # (128, 0, 0)
    assert cold[2] >= 120 and cold[0] <= 10 and cold[1] <= 10  # (0, 0, 128)


def test_viridis_endpoints_match_matplotlib() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    reference = matplotlib.colormaps["viridis"]
    lut = colormap_lut("viridis").astype(int)
    for level, value in ((0, 0.0), (128, 128 / 255), (255, 1.0)):
        expected = np.round(np.array(reference(value)[:3]) * 255).astype(int)
        assert np.abs(lut[level] - expected).max() <= 3, (level, lut[level], expected)


def test_unknown_colormap_names_the_choices() -> None:
    with pytest.raises(InspectorError, match=r"unknown colormap 'rainbowz': use jet, viridis"):
        colormap_lut("rainbowz")
    with pytest.raises(InspectorError, match="unknown colormap 'nope'"):
        RenderStyle(colormap="nope")


def test_lut_is_read_only_so_the_cache_cannot_be_corrupted() -> None:
    with pytest.raises(ValueError):
        colormap_lut("jet")[0, 0] = 7


# --- quantisation and heatmaps ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cam_to_uint8_truncates_like_grad_cam(rng: np.random.Generator, dtype: type) -> None:
    cam = rng.random((50, 70)).astype(dtype)
    cam[0, :4] = [0.0, 1.0, 0.5, 127.9 / 255]
    out = cam_to_uint8(cam)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _levels(cam))
    assert out[0, 3] == 127  # truncation, not rounding


def test_cam_to_uint8_clips_and_zeroes_nan() -> None:
    cam = np.array([[np.nan, -0.5, 1.5, np.inf, -np.inf, 0.2]], np.float32)
    np.testing.assert_array_equal(cam_to_uint8(cam), [[0, 0, 255, 255, 0, 51]])


def test_uint8_cam_is_taken_as_levels() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert cam_to_uint8(levels) is levels


def test_heatmap_is_the_lut_applied_to_the_levels(cam: np.ndarray) -> None:
    heat = render_heatmap(cam, "viridis")
    assert heat.shape == (*cam.shape, 3) and heat.dtype == np.uint8
    np.testing.assert_array_equal(heat, colormap_lut("viridis")[_levels(cam)])


def test_colorbar_runs_from_one_at_top_to_zero_at_bottom() -> None:
    bar = render_colorbar("jet", height=100, width=10)
    lut = colormap_lut("jet")
    assert bar.shape == (100, 10, 3) and bar.dtype == np.uint8
    np.testing.assert_array_equal(bar[0], np.tile(lut[255], (10, 1)))
    np.testing.assert_array_equal(bar[-1], np.tile(lut[0], (10, 1)))
    np.testing.assert_array_equal(bar[50, 0], lut[round(255 * (1 - 50 / 99))])


# --- overlays --------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.8])
def test_weighted_overlay_matches_formula(image: np.ndarray, cam: np.ndarray, alpha: float) -> None:
    heat = colormap_lut("jet")[_levels(cam)].astype(np.float64)
    expected = np.round((1 - alpha) * image + alpha * heat).astype(np.uint8)
    out = render_overlay(image, cam, RenderStyle("jet", alpha=alpha))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert _max_diff(out, expected) <= 1


@pytest.mark.parametrize("alpha", [0.4, 1.0])
def test_additive_overlay_matches_keras_formula(
    image: np.ndarray, cam: np.ndarray, alpha: float
) -> None:
    heat = colormap_lut("jet")[_levels(cam)].astype(np.float64)
    expected = np.clip(heat * alpha + image, 0, 255).astype(np.uint8)
    out = render_overlay(image, cam, RenderStyle("jet", alpha=alpha, blend="additive"))
    assert _max_diff(out, expected) <= 1
    assert (out == 255).any()  # saturation really happens on these random pixels


def test_opacity_zero_is_the_image_and_one_is_the_heatmap(
    image: np.ndarray, cam: np.ndarray
) -> None:
    np.testing.assert_array_equal(render_overlay(image, cam, RenderStyle(alpha=0.0)), image)
    np.testing.assert_array_equal(
        render_overlay(image, cam, RenderStyle(alpha=1.0)), render_heatmap(cam)
    )


def test_gray_original_is_blended_as_three_equal_channels(cam: np.ndarray) -> None:
    gray = np.linspace(0, 255, cam.size).astype(np.uint8).reshape(cam.shape)
    heat = colormap_lut("magma")[_levels(cam)].astype(np.float64)
    expected = np.round(0.6 * gray[:, :, None] + 0.4 * heat).astype(np.uint8)
    out = render_overlay(gray, cam, RenderStyle("magma", alpha=0.4))
    assert out.shape == (*cam.shape, 3)
    assert _max_diff(out, expected) <= 1
    np.testing.assert_array_equal(
        render_overlay(gray[:, :, None], cam, RenderStyle("magma", 0.4)), out
    )


def test_threshold_keeps_original_pixels_below_it(image: np.ndarray, cam: np.ndarray) -> None:
    plain = render_overlay(image, cam, RenderStyle(alpha=0.7))
    out = render_overlay(image, cam, RenderStyle(alpha=0.7, threshold=0.4))
    below = cam < 0.4
    assert below.any() and (~below).any()
    np.testing.assert_array_equal(out[below], image[below])
    np.testing.assert_array_equal(out[~below], plain[~below])


def test_threshold_on_uint8_levels_uses_level_over_255() -> None:
    levels = np.array([[101, 102, 103]], np.uint8)
    image = np.zeros((1, 3, 3), np.uint8)
    out = render_overlay(image, levels, RenderStyle("gray", alpha=1.0, threshold=102 / 255))
    np.testing.assert_array_equal(out[0, :, 0], [0, 102, 103])


def test_overlay_matches_pytorch_grad_cam(image: np.ndarray, cam: np.ndarray) -> None:
    grad_cam_image = pytest.importorskip("pytorch_grad_cam.utils.image")
    # show_cam_on_image divides by the blend's maximum; a white pixel under a level whose jet
    # colour has a 255 channel makes that maximum exactly 1, so both are on the same scale.
    lut = colormap_lut("jet")
    level = int(np.flatnonzero(lut.max(axis=1) == 255)[0])
    image = image.copy()
    cam = cam.copy()
    image[0, 0] = 255
    cam[0, 0] = (level + 0.5) / 255
    for alpha in (0.3, 0.5, 1.0):
        expected = grad_cam_image.show_cam_on_image(
            image.astype(np.float32) / 255, cam, use_rgb=True, image_weight=1 - alpha
        )
        assert _max_diff(render_overlay(image, cam, RenderStyle("jet", alpha=alpha)), expected) <= 1


def test_shape_mismatch_is_a_user_error(image: np.ndarray) -> None:
    with pytest.raises(InspectorError, match=r"CAM size 7x7 does not match image size 48x64"):
        render_overlay(image, np.zeros((7, 7), np.float32))
    with pytest.raises(InspectorError, match="2-D map"):
        render_overlay(image, np.zeros((1, 48, 64), np.float32))
    with pytest.raises(InspectorError, match="image is empty"):
        render_panels(np.zeros((0, 5), np.uint8), np.zeros((0, 5), np.float32))
    with pytest.raises(InspectorError, match="CAM is empty"):
        cam_to_uint8(np.zeros((0, 5), np.float32))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_range_is_rejected(alpha: float) -> None:
    with pytest.raises(InspectorError, match="opacity"):
        RenderStyle(alpha=alpha)


@pytest.mark.parametrize("sigma", [-1.0, float("nan"), True, "4", 1e9, float("inf")])
def test_blur_sigma_must_be_a_non_negative_number(sigma: object) -> None:
    with pytest.raises(InspectorError, match="blur sigma"):
        RenderStyle(blur_sigma=sigma)


def test_style_holds_the_choices_as_enums() -> None:
    style = RenderStyle(colormap=" Viridis ", blend="additive", blur_sigma=4)
    assert style.colormap is Colormap.VIRIDIS and style.blend == "additive"
    assert style.blur_sigma == 4.0 and isinstance(style.blur_sigma, float)


def test_bad_blend_and_bad_image_are_rejected(image: np.ndarray, cam: np.ndarray) -> None:
    with pytest.raises(InspectorError, match="unknown blend 'screen'"):
        RenderStyle(blend="screen")
    with pytest.raises(InspectorError, match="uint8"):
        render_overlay(image.astype(np.float32), cam)
    with pytest.raises(InspectorError, match="alpha channel"):
        render_overlay(np.zeros((48, 64, 4), np.uint8), cam)


# --- boxes -----------------------------------------------------------------------------------


def _frame_mask(shape: tuple[int, int], box: Box, thickness: int = 2) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[box.y0 : box.y1, box.x0 : box.x1] = True
    inner = np.zeros(shape, bool)
    inner[box.y0 + thickness : box.y1 - thickness, box.x0 + thickness : box.x1 - thickness] = True
    return mask & ~inner


def test_boxes_change_only_the_box_edge() -> None:
    base = np.full((60, 80, 3), 90, np.uint8)
    box = Box(10, 12, 40, 50)
    out = draw_boxes(base, [box])
    changed = (out != base).any(axis=2)
    np.testing.assert_array_equal(changed, _frame_mask((60, 80), box))
    assert tuple(out[12, 20]) == BOX_COLOR
    assert (base == 90).all()  # the input is not modified


def test_difficult_boxes_are_dashed_in_another_colour() -> None:
    base = np.zeros((60, 80, 3), np.uint8)
    box = Box(5, 5, 75, 55, difficult=True)
    out = draw_boxes(base, [box])
    changed = (out != base).any(axis=2)
    frame = _frame_mask((60, 80), box)
    assert not (changed & ~frame).any()
    assert 0.4 * frame.sum() < changed.sum() < 0.9 * frame.sum()  # gaps in the dashes
    assert tuple(out[5, 5]) == DIFFICULT_BOX_COLOR != BOX_COLOR


def test_labels_add_a_tag_above_the_box_and_boxes_are_clipped() -> None:
    base = np.zeros((100, 100, 3), np.uint8)
    out = draw_boxes(base, [Box(20, 40, 60, 80, label="scratches"), Box(90, 90, 200, 200)])
    above = out[:40, 20:70]
    assert (above != 0).any()
    # The clipped box still gets its two-tone bottom edge: the colour, then the dark line.
    assert (out[99, 90:100] == BOX_COLOR).all()
    assert (out[98, 91:99] == BOX_INNER_COLOR).all()


def test_labels_sit_outside_every_box_and_clear_of_each_other() -> None:
    # Two crazing boxes one above the other (the demo's crazing_1): neither tag may cover a box.
    base = np.full((200, 200, 3), 90, np.uint8)
    boxes = [Box(40, 60, 100, 120, label="crazing"), Box(60, 125, 120, 170, label="crazing")]
    out = draw_boxes(base, boxes)
    changed = (out != base).any(axis=2)
    edges = _frame_mask((200, 200), boxes[0]) | _frame_mask((200, 200), boxes[1])
    for box in boxes:  # inside each box only its own edge changed: no tag on the defect
        inside = np.zeros_like(changed)
        inside[box.y0 : box.y1, box.x0 : box.x1] = True
        assert not (changed & inside & ~edges).any()
    tags = changed & ~edges
    assert tags[:60].any()  # the first box's tag, above it
    assert tags[171:].any()  # the second's: above it is the first box, so below it
    assert not tags[121:125].any()


def test_a_label_with_no_room_outside_is_left_to_the_hover_text() -> None:
    box = Box(0, 0, 50, 50, label="scratches")  # fills the image: no place outside it
    assert label_rect(box, (30, 12), (50, 50), [(0, 0, 50, 50)]) is None
    out = draw_boxes(np.zeros((50, 50, 3), np.uint8), [box])
    np.testing.assert_array_equal((out != 0).any(axis=2), _frame_mask((50, 50), box))


def test_overlay_with_boxes_differs_only_on_the_edge(image: np.ndarray, cam: np.ndarray) -> None:
    box = Box(5, 6, 30, 40)
    plain = render_overlay(image, cam)
    boxed = render_overlay(image, cam, boxes=[box])
    changed = (boxed != plain).any(axis=2)
    assert not (changed & ~_frame_mask(cam.shape, box)).any()
    assert changed.sum() > 0.9 * _frame_mask(cam.shape, box).sum()


def test_gray_input_to_draw_boxes_comes_back_rgb() -> None:
    out = draw_boxes(np.zeros((20, 20), np.uint8), [Box(0, 0, 10, 10)])
    assert out.shape == (20, 20, 3)


# --- panels ----------------------------------------------------------------------------------


def _runs(flags: np.ndarray) -> int:
    """Number of runs of True in a 1-D boolean array."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    return int((np.diff(padded) == 1).sum())


@pytest.mark.parametrize("size", [32, 200, 300])
def test_panels_have_three_panels_and_a_caption(rng: np.random.Generator, size: int) -> None:
    image = rng.integers(0, 200, (size, size), dtype=np.uint8)  # never pure white
    cam = rng.random((size, size), dtype=np.float32)
    title = "pred: scratches 0.97 | target: scratches | gradcam @ layer4"
    fig = render_panels(image, cam, title=title, boxes=[Box(2, 2, size // 2, size // 2, "s")])
    panel = max(size, 224)
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    assert fig.shape[0] >= panel and fig.shape[1] > 3 * panel
    middle_row = fig[fig.shape[0] - panel // 2]
    assert _runs((middle_row != 255).any(axis=1)) == 3  # three panels with white gaps
    untitled = render_panels(image, cam)
    strip = fig.shape[0] - untitled.shape[0]
    assert strip > 0  # the title gets its own strip
    caption = fig[:strip]
    assert (caption < 100).all(axis=2).sum() > 50  # dark text pixels
    assert (caption == 255).all(axis=2).mean() > 0.5  # on a white background


def test_tiny_panels_are_upscaled_crisply(rng: np.random.Generator) -> None:
    image = rng.integers(0, 200, (32, 32, 3), dtype=np.uint8)
    fig = render_panels(image, np.zeros((32, 32), np.float32), RenderStyle(alpha=0.0))
    # 7x nearest: each source pixel is a 7x7 block somewhere in the original panel.
    bottom = fig.shape[0] - 1 - np.flatnonzero((fig[::-1] != 255).any(axis=(1, 2)))[0]
    left = np.flatnonzero((fig[bottom] != 255).any(axis=1))[0]
    panel = fig[bottom - 223 : bottom + 1, left : left + 224]
    np.testing.assert_array_equal(panel, np.repeat(np.repeat(image, 7, axis=0), 7, axis=1))


def test_panels_validate_inputs(image: np.ndarray) -> None:
    with pytest.raises(InspectorError, match="does not match"):
        render_panels(image, np.zeros((3, 3), np.float32))


def test_half_precision_and_bool_maps_are_accepted(image: np.ndarray, cam: np.ndarray) -> None:
    half = cam.astype(np.float16)
    np.testing.assert_array_equal(cam_to_uint8(half), _levels(half.astype(np.float32)))
    assert render_panels(image, half).ndim == 3
    np.testing.assert_array_equal(cam_to_uint8(cam > 0.5), np.where(cam > 0.5, 255, 0))


def test_results_do_not_share_scratch_memory(rng: np.random.Generator) -> None:
    gray = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    cams = [rng.random((40, 30), dtype=np.float32) for _ in range(2)]
    first = render_overlay(gray, cams[0], RenderStyle(threshold=0.2))
    snapshot = first.copy()
    second = render_overlay(gray, cams[1], RenderStyle(threshold=0.2))
    np.testing.assert_array_equal(first, snapshot)
    assert not np.array_equal(first, second)


def test_threads_render_independently(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    cams = [rng.random((256, 256), dtype=np.float32) for _ in range(8)]
    serial = [render_overlay(image, cam, RenderStyle(alpha=0.6)) for cam in cams]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            parallel = list(
                pool.map(lambda cam: render_overlay(image, cam, RenderStyle(alpha=0.6)), cams)
            )
            for got, want in zip(parallel, serial, strict=True):
                np.testing.assert_array_equal(got, want)


def _panel_overlay(figure: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The third (overlay) panel of a figure whose panels are the image's own size."""
    height, width = image.shape[:2]
    margin = max(8, round(height * 0.03))
    left = margin + 2 * (width + margin)
    return figure[-margin - height : -margin, left : left + width]


@pytest.mark.parametrize("alpha", [0.3, 0.9])
def test_panels_blend_their_overlay_as_asked(rng: np.random.Generator, alpha: float) -> None:
    image = rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)
    cam = rng.random((240, 240), dtype=np.float32)
    heat = colormap_lut("jet")[_levels(cam)].astype(np.float64)
    additive = np.clip(np.round(heat * alpha + image), 0, 255)
    weighted = np.round((1 - alpha) * image + alpha * heat)
    for blend, expected in (("additive", additive), ("weighted", weighted)):
        figure = render_panels(image, cam, RenderStyle("jet", alpha, blend=blend))
        assert _max_diff(_panel_overlay(figure, image), expected.astype(np.uint8)) <= 1
    assert (
        _max_diff(
            _panel_overlay(render_panels(image, cam, RenderStyle("jet", alpha)), image), weighted
        )
        <= 1
    )
    with pytest.raises(InspectorError, match="unknown blend 'screen'"):
        RenderStyle("jet", alpha, blend="screen")
