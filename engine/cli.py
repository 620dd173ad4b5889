"""The command line: batch export, the layer table, session reports, demo data and training."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from engine import __version__
from engine.choices import Blend, Colormap, Compare
from engine.errors import InspectorError, first_line
from engine.images import DEFAULT_MAX_PIXELS
from engine.methods.registry import Smoothing, method_names
from engine.metrics.registry import ROAD_NOISE, metric_names, parse_metrics, require_metrics
from engine.profile import ModelProfile, demo_profile_path, load_profile
from engine.render import MAX_BLUR_SIGMA, RenderStyle
from engine.resources import demo_images_dir, resource_path

if TYPE_CHECKING:
    from engine.batch_options import BatchOptions, BatchSummary
    from engine.cam import CamEngine, CamResult
    from engine.dataset import ImageRecord
    from engine.ray_batch import RayOptions
    from engine.report import ReportData

# Writes report.pdf from report.html (html, pdf, paper) and returns its page count; Qt's, so
# main.py passes it in (engine/ never imports Qt).
PdfWriter = Callable[[Path, Path, str], int]
PAPERS = ("a4", "letter")

EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_DISK_FULL, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
DEFAULT_OUTPUT = Path("gradcam-output")
MAX_BATCH_SIZE = 4096


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2), like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}; see '{self.prog} --help'\n")


def _number(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite kind in [low, high], named in the message when it is not."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not low <= value <= high:
            wanted = "a whole number" if kind is int else "a number"
            upper = "" if math.isinf(high) else f" to {high:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted} from {low:g}{upper}")
        return value

    return parse


_UNIT = _number(float, 0.0, 1.0)
_COUNT = _number(int, 1, math.inf)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ProgressBar:
    """A one-line progress bar with rate and ETA, drawn only on a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, failed: int) -> None:
        if not self.enabled or total == 0:
            return
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        filled = int(30 * done / total)
        bar = "#" * filled + "." * (30 - filled)
        errors = f" {failed} failed" if failed else ""
        self.stream.write(f"\r[{bar}] {done}/{total} {rate:.1f} img/s ETA {eta:4.0f} s{errors}   ")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _location(text: str) -> Path | str:
    """A local path, or a URI (s3://bucket/prefix, file:///data) kept as text: Path folds '//'."""
    return text if _URI.match(text) else Path(text)


def _add_profile_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        type=Path,
        help="model profile (TOML) or Hugging Face save_pretrained folder; default: the demo",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a full pickled model (it can run code: only for files you trust)",
    )
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="allow the profile's Python code (python: architecture, code =, a folder's code)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")


def _add_smoothing_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--aug-smooth",
        action=argparse.BooleanOptionalAction,
        help="mean map of six augmented inputs (flip x brightness 0.9/1/1.1, as pytorch-grad-cam; "
        "six passes); default: the profile's",
    )
    parser.add_argument(
        "--eigen-smooth",
        action=argparse.BooleanOptionalAction,
        help="first principal component of the weighted activations instead of their sum; "
        "default: the profile's",
    )


def _smoothing(args: argparse.Namespace, profile: ModelProfile) -> Smoothing:
    """The command line's smoothing options, the profile's where none was given."""
    aug, eigen = profile.cam.smoothing.aug, profile.cam.smoothing.eigen
    return Smoothing(
        aug if args.aug_smooth is None else args.aug_smooth,
        eigen if args.eigen_smooth is None else args.eigen_smooth,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradcam-inspector", description="See where an image classifier looks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    batch = commands.add_parser("batch", help="write heatmaps, overlays and results.csv")
    _add_profile_args(batch)
    batch.add_argument(
        "--input", type=_location, help="image file or folder (or a URI with --ray); default: demo"
    )
    batch.add_argument(
        "--output", type=_location, default=DEFAULT_OUTPUT, help="output folder (or URI with --ray)"
    )
    batch.add_argument("--method", choices=method_names(), help="default: the profile's")
    batch.add_argument("--layer", help="dotted layer name; default: the profile's or automatic")
    batch.add_argument("--target", default="pred", help="pred, gt, a class index or name")
    batch.add_argument("--colormap", choices=list(Colormap), help="default: the profile's")
    batch.add_argument("--alpha", type=_UNIT, help="heatmap opacity 0..1; default: the profile's")
    batch.add_argument(
        "--blend",
        choices=list(Blend),
        help="overlay: weighted (1-a)*image + a*heat, or additive heat*a + image (Keras); "
        "default: the profile's",
    )
    _add_smoothing_args(batch)
    batch.add_argument("--threshold", type=_UNIT, default=0.0, help="hide heat below 0..1")
    batch.add_argument(
        "--blur",
        type=_number(float, 0.0, MAX_BLUR_SIGMA),
        default=0.0,
        help=f"Gaussian blur sigma in pixels, 0..{MAX_BLUR_SIGMA:g}",
    )
    batch.add_argument("--batch-size", type=_number(int, 1, MAX_BATCH_SIZE), default=8)
    batch.add_argument(
        "--max-pixels",
        type=_COUNT,
        default=DEFAULT_MAX_PIXELS,
        help=f"largest image in pixels (default {DEFAULT_MAX_PIXELS:,}); larger JPEGs are "
        "decoded at 1/2, 1/4 or 1/8, other larger images refused",
    )
    batch.add_argument(
        "--resume",
        action="store_true",
        help="keep the ok rows of the output's results.csv and skip those images",
    )
    batch.add_argument("--save-raw", action="store_true", help="also write <stem>_cam.npy")
    batch.add_argument("--panels", action="store_true", help="also write <stem>_panels.png")
    batch.add_argument("--boxes", action="store_true", help="draw ground-truth boxes")
    batch.add_argument(
        "--compare",
        choices=list(Compare),
        help="also write <stem>_compare.png: every method drawn from one capture, or the method "
        "at several layers from one pass",
    )
    batch.add_argument(
        "--class-averages",
        action="store_true",
        help="also write class_averages.png and class_summary.html: the mean map per class "
        "(and the metrics' means per class with --metrics)",
    )
    batch.add_argument(
        "--metrics",
        help="faithfulness metrics as results.csv columns: 'all' or names separated by commas "
        f"({', '.join(metric_names())})",
    )
    batch.add_argument(
        "--road-noise",
        type=float,
        default=ROAD_NOISE,
        help=f"std of ROAD's imputation noise in normalised-input units (default {ROAD_NOISE})",
    )
    batch.add_argument(
        "--seed",
        type=_number(int, 0, 2**32 - 1),
        default=0,
        help="seed of ROAD's noise (default 0)",
    )
    batch.add_argument(
        "--allow-inside-input", action="store_true", help="allow an output inside the input"
    )
    batch.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray (pip install '.[ray]'): alone, a local Ray on this machine's cores and "
        "GPUs; 'auto' or ray://host:10001 joins a cluster",
    )
    batch.add_argument(
        "--ray-actors",
        type=_COUNT,
        metavar="N",
        help="model actors with --ray; default: one per GPU, or one per node on CPUs",
    )

    sanity = commands.add_parser(
        "sanity", help="randomise the weights from the logits down: does the map change?"
    )
    _add_profile_args(sanity)
    sanity.add_argument("--input", type=Path, required=True, help="image file or folder")
    sanity.add_argument("--output", type=Path, default=Path("sanity-output"), help="output folder")
    sanity.add_argument("--method", choices=method_names(), help="default: the profile's")
    sanity.add_argument("--layer", help="dotted layer name; default: the profile's or automatic")
    sanity.add_argument(
        "--seed", type=_number(int, 0, 2**32 - 1), default=0, help="seed of the re-initialisation"
    )
    sanity.add_argument(
        "--allow-inside-input", action="store_true", help="allow an output inside the input"
    )
    _add_smoothing_args(sanity)

    layers = commands.add_parser("layers", help="print the model's layer table")
    _add_profile_args(layers)

    demo = commands.add_parser("demo-data", help="write generated NEU-like images")
    demo.add_argument("--output", type=Path, required=True)
    demo.add_argument("--count", type=_number(int, 1, 100_000), default=60)
    demo.add_argument("--seed", type=_number(int, 0, 2**32 - 1), default=0)

    report = commands.add_parser(
        "report", help="write report.csv and report.html (and report.pdf) of a session"
    )
    report.add_argument("session", type=Path, help="the session file (.sqlite)")
    report.add_argument("--output", type=Path, required=True, help="output folder")
    _add_profile_args(report)
    report.add_argument(
        "--allow-other-weights",
        action="store_true",
        help="draw the overlays even when the profile's weights are not the session's",
    )
    report.add_argument(
        "--no-images", action="store_true", help="no overlays: no model is loaded (fast)"
    )
    report.add_argument("--pdf", action="store_true", help="also write report.pdf")
    report.add_argument("--paper", choices=PAPERS, default="a4", help="the PDF's paper size")

    session = commands.add_parser("session", help="sessions: merge offline reviews into one")
    session_commands = session.add_subparsers(dest="session_command", required=True)
    merge = session_commands.add_parser(
        "merge",
        help="merge sessions reviewed on disconnected machines into one; merging twice "
        "changes nothing",
    )
    merge.add_argument("sources", nargs="+", help="session files (or postgresql:// URLs)")
    merge.add_argument(
        "--into", required=True, help="the target: a session file or postgresql://user@host/db"
    )

    train = commands.add_parser("train-demo", help="retrain the demo model and measure it")
    train.add_argument(
        "--output", type=Path, default=None, help="weights file; default: the bundled demo"
    )
    train.add_argument("--epochs", type=_number(int, 1, 10_000), default=None)
    train.add_argument(
        "--count", type=_number(int, 1, 100_000), default=None, help="training images"
    )
    return parser


def _profile(args: argparse.Namespace) -> ModelProfile:
    profile = load_profile(args.profile if args.profile else demo_profile_path())
    if getattr(args, "trust_code", False):
        return dataclasses.replace(profile, trust_code=True)
    return profile


def _style(args: argparse.Namespace, profile: ModelProfile) -> RenderStyle:
    """The command line's drawing options, the profile's where none was given."""
    alpha = profile.cam.alpha if args.alpha is None else args.alpha
    if not 0.0 <= alpha <= 1.0:
        raise InspectorError(f"--alpha must be between 0 and 1, got {alpha}")
    return RenderStyle(
        colormap=args.colormap or profile.cam.colormap,
        alpha=alpha,
        threshold=args.threshold,
        blend=args.blend or profile.cam.blend,
        blur_sigma=args.blur,
    )


def _road_noise(value: float) -> float:
    if not value >= 0:
        raise InspectorError(f"--road-noise must be 0 or more, got {value}")
    return value


def _engine(args: argparse.Namespace, profile: ModelProfile):
    from engine.cam import CamEngine

    engine = CamEngine.from_profile(profile, args.device, trust_pickle=args.trust_pickle)
    for note in engine.load_info.notes:
        print(f"note: {note}", file=sys.stderr)
    return engine


class _OutputNote:
    """Keeps the first result's note on how the logits were picked out of a tuple/dict output,
    so the run says it once, on stderr, however many images had it."""

    def __init__(self) -> None:
        self.text = ""

    def __call__(self, _record: object, result: CamResult) -> None:
        self.text = self.text or result.output_note

    def print(self) -> None:
        if self.text:
            print(f"note: {self.text}", file=sys.stderr)


class _ClassAverager:
    """Adds each finished map to the class averages; writes the class summary at the end."""

    def __init__(self, size: tuple[int, int]) -> None:
        from engine.class_average import ClassAverages

        self.averages = ClassAverages(size)

    def __call__(self, record: ImageRecord, result: CamResult) -> None:
        self.averages.add(record.ground_truth, result.predicted.name, result.cam)

    def write(self, output: Path, csv_path: Path, metrics: Sequence[str], colormap: str) -> Path:
        import csv

        from engine.class_average import write_class_summary

        with csv_path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return write_class_summary(output, self.averages, rows, metrics, colormap)


def _both(*callbacks: object) -> Callable[[ImageRecord, CamResult], None]:
    """One on_result callback calling each of ``callbacks`` that is not None."""
    chosen = [c for c in callbacks if c is not None]

    def call(record: ImageRecord, result: CamResult) -> None:
        for callback in chosen:
            callback(record, result)

    return call


def _batch_options(args: argparse.Namespace, profile: ModelProfile, output: Path) -> BatchOptions:
    from engine.batch_options import BatchOptions

    metrics = require_metrics(parse_metrics(args.metrics)) if args.metrics else ()
    return BatchOptions(
        output=output,
        method=args.method or profile.cam.method,
        layer=args.layer,
        target=args.target,
        style=_style(args, profile),
        batch_size=args.batch_size,
        save_raw=args.save_raw,
        panels=args.panels,
        draw_boxes=args.boxes,
        max_pixels=args.max_pixels,
        resume=args.resume,
        smoothing=_smoothing(args, profile),
        compare=args.compare,
        metrics=metrics,
        road_noise=_road_noise(args.road_noise),
        seed=args.seed,
    )


def _print_summary(summary: BatchSummary) -> int:
    """The run's last line (and why it stopped early) and its exit status."""
    resumed = f" ({summary.resumed} kept from the earlier run)" if summary.resumed else ""
    print(
        f"{summary.succeeded} ok{resumed}, {summary.failed} failed in {summary.seconds:.1f} s; "
        f"results in {summary.csv_path}",
        file=sys.stderr,
    )
    if summary.stopped:
        print(
            f"stopped: {summary.stopped}; free some space, then run again with --resume",
            file=sys.stderr,
        )
        return EXIT_DISK_FULL
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from engine.batch import BatchRunner
    from engine.dataset import scan_images
    from engine.export import ensure_output_dir

    profile = _profile(args)
    if args.ray is not None:
        return _batch_on_ray(args, profile)
    if args.ray_actors is not None:
        raise InspectorError("--ray-actors needs --ray")
    if args.class_averages and args.resume:
        # The kept rows' maps are not made again: the averages would hold only the new images.
        raise InspectorError(
            "--class-averages needs every image's map and --resume skips the finished ones; "
            "run without --resume"
        )
    if isinstance(args.input, str) or isinstance(args.output, str):
        raise InspectorError("an --input or --output URI (s3://...) needs --ray")
    input_path = args.input if args.input else demo_images_dir()
    records = scan_images(input_path, profile.classes)
    if not records:
        raise InspectorError(f"no images found in '{input_path}'")
    root = input_path if input_path.is_dir() else None
    output = ensure_output_dir(args.output, root, args.allow_inside_input)
    engine = _engine(args, profile)
    options = _batch_options(args, profile, output)
    output_note = _OutputNote()
    averages = _ClassAverager(engine.size) if args.class_averages else None
    runner = BatchRunner(engine, options, _both(output_note, averages))
    print(
        f"{len(records)} images, {profile.name} on {engine.device}, "
        f"{options.method} @ {runner.layer}, output {output}",
        file=sys.stderr,
    )
    try:
        summary = runner.run(records, progress=ProgressBar())
    finally:
        output_note.print()
    status = _print_summary(summary)
    if averages is not None and not summary.cancelled:
        path = averages.write(output, summary.csv_path, options.metrics, options.style.colormap)
        print(f"class averages in {path}", file=sys.stderr)
    return status


def _ray_inputs(
    args: argparse.Namespace, profile: ModelProfile
) -> tuple[list[ImageRecord], Path, RayOptions]:
    """The images and output of a Ray batch: local paths as the local batch has them, or URIs
    read and written through pyarrow file systems."""
    from engine.dataset import scan_images
    from engine.export import ensure_output_dir
    from engine.ray_batch import RayOptions
    from engine.uri_folders import UriFolder, scan_uri_images

    source = UriFolder(args.input) if isinstance(args.input, str) else None
    target = UriFolder(args.output) if isinstance(args.output, str) else None
    input_path = args.input if args.input else demo_images_dir()
    if source is not None:
        records = scan_uri_images(source, profile.classes)
    else:
        records = scan_images(input_path, profile.classes)
    if not records:
        raise InspectorError(f"no images found in '{input_path}'")
    if target is not None:
        output = target.root
    else:
        root = input_path if source is None and input_path.is_dir() else None
        output = ensure_output_dir(args.output, root, args.allow_inside_input)
    return records, output, RayOptions(args.ray_actors, args.resume, source, target)


def _batch_on_ray(args: argparse.Namespace, profile: ModelProfile) -> int:
    """The batch on Ray: checked here first (model, layer, target), then run by the cluster."""
    from engine.batch import BatchRunner
    from engine.cam import CamEngine

    try:
        from engine.ray_batch import RayBatch, ray_session, ship_model
    except ImportError as exc:
        raise InspectorError(
            f"--ray needs Ray: pip install 'gradcam-inspector[ray]' ({exc.name} is missing)"
        ) from exc
    if args.class_averages:
        raise InspectorError("--class-averages is not available with --ray yet; run it locally")
    records, output, ray_options = _ray_inputs(args, profile)
    options = _batch_options(args, profile, output)
    # The driver loads the model once on the CPU so a wrong layer or target is one line here,
    # not an error in every actor.
    checker = CamEngine.from_profile(profile, "cpu", trust_pickle=args.trust_pickle)
    for note in checker.load_info.notes:
        print(f"note: {note}", file=sys.stderr)
    layer = BatchRunner(checker, options).layer
    shipment = ship_model(profile, args.device, args.trust_pickle)
    batch = RayBatch(shipment, options, layer, ray_options)
    shown = args.output if ray_options.target is not None else output
    with ray_session(args.ray) as dashboard:
        print(
            f"{len(records)} images, {profile.name} on Ray ({batch.cluster_text()}), "
            f"{options.method} @ {layer}, output {shown}",
            file=sys.stderr,
        )
        if dashboard:
            print(f"Ray dashboard: {dashboard}", file=sys.stderr)
        summary = batch.run(records, progress=ProgressBar())
    if batch.skipped:
        print(f"resumed: {batch.skipped} images already done", file=sys.stderr)
    if batch.output_note:
        print(f"note: {batch.output_note}", file=sys.stderr)
    return _print_summary(summary)


def cmd_sanity(args: argparse.Namespace) -> int:
    from engine.batch import output_stems
    from engine.dataset import scan_images
    from engine.export import CsvAppender, ensure_output_dir, write_png
    from engine.images import load_image
    from engine.methods.registry import describe_method
    from engine.sanity import (
        SANITY_COLUMNS,
        engine_maps,
        run_sanity,
        sanity_csv_rows,
        sanity_strip,
    )

    profile = _profile(args)
    records = scan_images(args.input, profile.classes)
    if not records:
        raise InspectorError(f"no images found in '{args.input}'")
    root = args.input if args.input.is_dir() else None
    output = ensure_output_dir(args.output, root, args.allow_inside_input)
    engine = _engine(args, profile)
    method = args.method or profile.cam.method
    layer = engine.resolve_layers(args.layer)[0]
    images = {}
    for record in records:
        try:
            images[record.rel_path.as_posix()] = load_image(record.path)
        except InspectorError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
    if not images:
        raise InspectorError(f"no readable images in '{args.input}'")
    description = f"{describe_method(method)} at {layer}"
    print(f"{len(images)} images, {description}, seed {args.seed}", file=sys.stderr)
    maps = engine_maps(method, layer, _smoothing(args, profile))
    result = run_sanity(engine, images, maps, args.seed, description)
    with CsvAppender(output / "sanity.csv", SANITY_COLUMNS) as csv:
        for row in sanity_csv_rows(result, method, layer):
            csv.append(row)
    kept = [record for record in records if record.rel_path.as_posix() in images]
    for record, stem in zip(kept, output_stems(kept, output), strict=True):
        name = record.rel_path.as_posix()
        strip = sanity_strip(result.maps[name], result.stage_names, profile.cam.colormap, name)
        write_png(stem.with_name(f"{stem.name}_sanity.png"), strip)
    print(("warning: " if result.flagged else "") + result.message, file=sys.stderr)
    print(f"wrote {output / 'sanity.csv'} and {len(kept)} cascade strips", file=sys.stderr)
    return EXIT_OK


def cmd_layers(args: argparse.Namespace) -> int:
    from engine.layers import format_inventory

    profile = _profile(args)
    engine = _engine(args, profile)
    print(format_inventory(engine.inventory))
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace) -> int:
    from engine.demo_data import write_neu_det

    paths = write_neu_det(args.output, args.count, args.seed)
    print(f"wrote {len(paths)} images with annotations to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_train_demo(args: argparse.Namespace) -> int:
    from engine.train_demo import train_demo

    kwargs = {}
    if args.epochs is not None:
        kwargs["epochs"] = args.epochs
    if args.count is not None:
        kwargs["train_count"] = args.count
    output = args.output or resource_path("demo", "demo_resnet18.safetensors")
    train_demo(output, **kwargs)
    return EXIT_OK


def _report_engine(args: argparse.Namespace, data: ReportData) -> tuple[CamEngine | None, str, str]:
    """The model that draws the gallery and its profile's name, or None and why not.

    Weights other than the session's are refused unless --allow-other-weights.
    """
    from engine.report_images import weights_mismatch

    if args.no_images:
        return None, "", "overlays not drawn (--no-images)"
    path = args.profile or data.info.profile_path
    if not path:
        return None, "", "the session names no profile: pass --profile to draw the overlays"
    if not Path(path).is_file():
        fix = "check the --profile path" if args.profile else "pass --profile to draw the overlays"
        return None, "", f"profile '{path}' not found: {fix}"
    try:
        profile = load_profile(path)
        engine = _engine(args, profile)
    except InspectorError as exc:
        return None, "", f"the model could not be loaded: {exc}"
    mismatch = weights_mismatch(data.info.weights_sha256, engine.load_info.weights_sha256)
    if mismatch and not args.allow_other_weights:
        raise InspectorError(
            f"{mismatch} Pass --allow-other-weights to draw them anyway (the report says so), "
            "or --no-images for a report without overlays"
        )
    if mismatch:
        print(f"warning: {mismatch}", file=sys.stderr)
    return engine, profile.name, ""


def _warn(line: str) -> None:
    print(f"warning: {first_line(line)}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    from engine.report import ReportData
    from engine.report_images import write_model_report
    from engine.session import Session

    write_pdf: PdfWriter | None = args.write_pdf
    if args.pdf and write_pdf is None:
        raise InspectorError("--pdf needs Qt: run it as 'gradcam-inspector report ... --pdf'")
    with Session.open_existing(args.session, read_only=True) as session:
        data = ReportData.read(session)
    engine, name, reason = _report_engine(args, data)
    if reason and not args.no_images:
        print(f"warning: {reason}", file=sys.stderr)
    files = write_model_report(data, args.output, engine, name, reason, warn=_warn)
    print(f"wrote {files.csv} and {files.html}", file=sys.stderr)
    if args.pdf and write_pdf is not None:
        pdf = files.html.with_suffix(".pdf")
        pages = write_pdf(files.html, pdf, args.paper)
        print(f"wrote {pdf} ({pages} pages, {args.paper.upper()})", file=sys.stderr)
    return EXIT_OK


def cmd_session(args: argparse.Namespace) -> int:
    from engine.session_merge import merge
    from engine.session_pg import display, is_team_location, with_password

    counts = with_password(args.into, lambda password: merge(args.sources, args.into, password))
    for line in counts.warnings + counts.conflicts:
        _warn(line)
    target = display(args.into) if is_team_location(args.into) else args.into
    print(f"merged into {target}: {counts.describe()}", file=sys.stderr)
    return EXIT_OK


COMMANDS = {
    "batch": cmd_batch,
    "sanity": cmd_sanity,
    "layers": cmd_layers,
    "demo-data": cmd_demo_data,
    "train-demo": cmd_train_demo,
    "report": cmd_report,
    "session": cmd_session,
}


def run(argv: Sequence[str], write_pdf: PdfWriter | None = None) -> int:
    """Parse and run one command; user errors print one line on stderr and exit 2 (4 when
    the disk is full).

    write_pdf: how `report --pdf` writes report.pdf (main.py passes Qt's).
    """
    parser = build_parser()
    args = parser.parse_args(list(argv))
    args.write_pdf = write_pdf
    try:
        return COMMANDS[args.command](args)
    except InspectorError as exc:
        from engine.batch_outputs import is_disk_full

        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DISK_FULL if is_disk_full(exc) else EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
