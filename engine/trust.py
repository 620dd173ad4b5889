"""One image's trust tools for the window: the sanity check, comparison grids, the metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.cam import CamEngine, Capture, TargetSpec, parse_target
from engine.choices import Compare, TrustTool
from engine.compare import CompareRequest, compare_figure, compare_results
from engine.localization import Box
from engine.methods.registry import ProgressCallback, Smoothing, describe_method
from engine.metrics.faithfulness import MetricSettings
from engine.metrics.measure import measure
from engine.metrics.registry import METRICS
from engine.render import RenderStyle
from engine.sanity import engine_maps, run_sanity, sanity_strip


@dataclass(frozen=True)
class TrustQuestion:
    """Which tool, on which image, for the window's current layer, method and target."""

    tool: TrustTool
    name: str  # the image's name in the figure's title
    image: np.ndarray
    boxes: tuple[Box, ...]
    layer: str
    method: str
    target: str | int  # "pred" or a class index
    ground_truth: int | None
    style: RenderStyle
    capture: Capture | None = None  # the image's pass at this layer and target, if made already
    smoothing: Smoothing | None = None  # None: the profile's


@dataclass(frozen=True)
class TrustAnswer:
    """A figure (RGB uint8; None for the metrics) and the words that go with it."""

    figure: np.ndarray | None
    text: str


def answer(
    engine: CamEngine,
    question: TrustQuestion,
    cancel: Callable[[], bool] | None = None,
    progress: ProgressCallback | None = None,
) -> TrustAnswer:
    """Run the question's tool on its image with the engine's model (left as found);
    ``progress`` hears Score-CAM's passes."""
    if question.tool == TrustTool.SANITY:
        return _sanity(engine, question, cancel)
    if question.tool == TrustTool.METRICS:
        return _metrics(engine, question, cancel)
    return _compare(engine, question, cancel, progress)


def _target(engine: CamEngine, question: TrustQuestion) -> TargetSpec:
    return parse_target(question.target, engine.classes)


def _sanity(
    engine: CamEngine, question: TrustQuestion, cancel: Callable[[], bool] | None
) -> TrustAnswer:
    description = f"{describe_method(question.method)} at {question.layer}"
    maps = engine_maps(question.method, question.layer, question.smoothing)
    images = {question.name: question.image}
    result = run_sanity(engine, images, maps, 0, description, cancel)
    strip = sanity_strip(
        result.maps[question.name], result.stage_names, question.style.colormap, question.name
    )
    lines = [result.message, "", "stage  randomised   Spearman  SSIM"]
    lines += [
        f"{row.stage:>5}  {row.randomised:<12} {row.spearman:>8.3f}  {row.ssim:.3f}"
        + ("  (flat)" if row.flat else "")
        for row in result.rows
    ]
    return TrustAnswer(strip, "\n".join(lines))


def _compare(
    engine: CamEngine,
    question: TrustQuestion,
    cancel: Callable[[], bool] | None,
    progress: ProgressCallback | None,
) -> TrustAnswer:
    kind = Compare.LAYERS if question.tool == TrustTool.LAYERS else Compare.METHODS
    request = CompareRequest(
        kind,
        question.method,
        question.layer,
        _target(engine, question),
        question.style,
        smoothing=question.smoothing,
        extra_passes=question.tool == TrustTool.ALL_METHODS,
    )
    truth = [question.ground_truth]
    captures = None if question.capture is None else [question.capture]
    found = compare_results(engine, [question.image], request, truth, cancel, progress, captures)[0]
    figure = compare_figure(question.image, found, question.style, question.boxes, question.name)
    note = "" if question.boxes else "No ground-truth boxes: no pointing-game hits to show."
    return TrustAnswer(figure, note)


def _metrics(
    engine: CamEngine, question: TrustQuestion, cancel: Callable[[], bool] | None
) -> TrustAnswer:
    result = engine.explain(
        [question.image],
        question.method,
        question.layer,
        target=_target(engine, question),
        ground_truth=[question.ground_truth],
        blur_sigma=question.style.blur_sigma,
        smoothing=question.smoothing,
    )[0]
    settings = MetricSettings(tuple(spec.name for spec in METRICS))
    values = measure(
        engine, [question.image], [result], settings, question.style.blur_sigma, cancel
    )[0]
    lines = [f"{describe_method(question.method)} at {question.layer}, class {result.target_name}"]
    lines += [
        f"{spec.label}: {values[spec.name]:+.4f} "
        f"({'higher' if spec.higher_is_better else 'lower'} is better)"
        for spec in METRICS
    ]
    return TrustAnswer(None, "\n".join(lines))
