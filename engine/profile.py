"""Model profiles: TOML files naming a classifier's architecture, weights, classes, CAM defaults."""

from __future__ import annotations

import difflib
import math
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.backends import architecture_problem, backend_for
from engine.backends.hf_backend import is_hf_folder
from engine.backends.python_backend import PREFIX as PYTHON_PREFIX
from engine.backends.python_backend import code_path
from engine.choices import (
    Activation,
    Blend,
    Choice,
    Colormap,
    Grayscale,
    Layout,
    Normalize,
    Reshape,
    Resize,
)
from engine.errors import InspectorError, stat_file
from engine.methods.registry import DEFAULT_METHOD, NO_SMOOTHING, Smoothing, method_names
from engine.resources import resource_path

C = TypeVar("C", bound=Choice)

IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)
DEFAULT_SIZE: tuple[int, int] = (224, 224)
DEFAULT_ALPHA = 0.5
# Beyond this a size is surely a typo, and it would exhaust memory long before giving a heatmap.
MAX_SIDE = 8192
_MAX_PATH_CHARS = 4096  # PATH_MAX on Linux; longer is no path any system opens
# float32's smallest normal number: a smaller std makes the model's input infinite or NaN.
MIN_STD = 1.1754943508222875e-38

_TOP_KEYS = (
    "name",
    "architecture",
    "weights",
    "classes",
    "trust_pickle",
    "code",
    "trust_code",
    "preprocess",
    "cam",
    "output",
)
_PREPROCESS_KEYS = ("size", "mean", "std", "grayscale", "layout", "resize", "crop")
_CAM_KEYS = (
    "layer",
    "method",
    "colormap",
    "alpha",
    "normalize",
    "blend",
    "reshape",
    "aug_smooth",
    "eigen_smooth",
)
_OUTPUT_KEYS = ("logits", "activation")


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes the model's input tensor."""

    size: tuple[int, int]  # (height, width)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    grayscale: Grayscale
    layout: Layout = Layout.NCHW  # NHWC: the model takes channels-last tensors (a Keras export)
    # False: the profile names no size and DEFAULT_SIZE stands in; an ONNX graph with a free
    # input size then refuses to guess, a fixed one sets it.
    size_given: bool = True
    # A Hugging Face processor's geometry: resized (stretched, or by the shortest edge) to
    # size / crop, then the central size x size kept; the map covers that region only.
    resize: Resize = Resize.STRETCH
    crop: float = 1.0


@dataclass(frozen=True)
class CamDefaults:
    """The CAM settings a profile starts with; the user can change them per run."""

    layer: str | None  # dotted named_modules() name; None = found automatically
    method: str
    colormap: Colormap
    alpha: float
    normalize: Normalize = Normalize.MINMAX  # MAX: ReLU then divide by the maximum (Keras)
    blend: Blend = Blend.WEIGHTED  # ADDITIVE: heatmap * alpha + image, as Keras does
    reshape: Reshape = Reshape.AUTO  # how a transformer layer's tokens become a grid
    smoothing: Smoothing = NO_SMOOTHING  # pytorch-grad-cam's aug_smooth / eigen_smooth


@dataclass(frozen=True)
class OutputSpec:
    """Which part of the model's output holds the logits, and how they become probabilities."""

    logits: int | str = "auto"  # "auto", an index into a tuple/list, or a key / attribute name
    activation: Activation = Activation.SOFTMAX  # SIGMOID: one output binary, several multi-label


@dataclass(frozen=True)
class ModelProfile:
    """Everything needed to build, load and explain one classifier."""

    name: str
    architecture: str
    weights: Path | None  # absolute; None = random initialisation
    classes: tuple[str, ...]  # empty = named class_0.. from the checkpoint head
    preprocess: PreprocessSpec
    cam: CamDefaults
    trust_pickle: bool
    source: Path | None  # the TOML file it came from, if any
    output: OutputSpec = OutputSpec()
    # Running the user's Python: a python: architecture, a code file, a hub folder's code.
    trust_code: bool = False
    # A .py file whose classes a trusted full pickled model needs (it names __main__.MyNet).
    code: Path | None = None


def demo_profile_path() -> Path:
    """The bundled demo profile."""
    return resource_path("profiles", "demo.toml")


def peek_classes(path: Path) -> tuple[str, ...]:
    """A profile's class names without validating it (that needs torchvision); () if unreadable.

    The window reads ground truth from folder names with them while the model loads; the loaded
    profile's classes replace them.
    """
    try:
        with path.open("rb") as fh:
            classes = tomllib.load(fh).get("classes", [])
    except (OSError, tomllib.TOMLDecodeError):
        return ()
    return tuple(c for c in classes if isinstance(c, str))


def load_profile(path: str | Path) -> ModelProfile:
    """Read and validate a profile TOML file; relative weights resolve against its folder."""
    path = Path(path).expanduser()
    info = stat_file(path, "profile")
    if is_hf_folder(path):
        return folder_profile(path)
    if not stat.S_ISREG(info.st_mode):
        raise InspectorError(
            f"profile path is not a file or a Hugging Face folder (with a config.json): {path}"
        )
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InspectorError(f"profile '{path.name}' is not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per nesting level
        raise InspectorError(f"profile '{path.name}' is nested too deeply to read") from exc
    except UnicodeDecodeError as exc:
        raise InspectorError(f"profile '{path.name}' is not UTF-8 text") from exc
    except OSError as exc:
        raise InspectorError(f"cannot read profile '{path}': {exc.strerror or exc}") from exc
    source = path.resolve()
    return parse_profile(data, source.parent, source)


def folder_profile(folder: Path) -> ModelProfile:
    """The profile of a Hugging Face save_pretrained folder: everything from the folder."""
    folder = folder.resolve()
    data = {"name": folder.name, "architecture": "hf", "weights": str(folder)}
    return parse_profile(data, folder.parent, None)


def parse_profile(data: Mapping[str, Any], base_dir: Path, source: Path | None) -> ModelProfile:
    """Validate already-parsed TOML data; errors name the source file and the field.

    Values the weights already hold (a Hugging Face folder's classes and preprocessing) fill
    what the profile leaves out.
    """
    where = _label(source)
    _reject_unknown(data, _TOP_KEYS, "", where)
    code = _code(data.get("code"), base_dir, where)
    given = data.get("architecture")
    if given is None and code is not None:  # a full pickled model saved from that script
        given = f"{PYTHON_PREFIX}{code}"
    architecture = _architecture(given, base_dir, where)
    name = data.get("name", source.stem if source is not None else architecture)
    weights = _weights(data.get("weights"), base_dir, where)
    found = backend_for(architecture).profile_defaults(weights)
    preprocess = {**found.get("preprocess", {}), **_table(data, "preprocess", where)}
    return ModelProfile(
        name=_nonempty_str(name, "name", where),
        architecture=architecture,
        weights=weights,
        classes=_classes(data.get("classes", found.get("classes")), where),
        preprocess=_preprocess(preprocess, where),
        cam=_cam(_table(data, "cam", where), where),
        trust_pickle=_bool(data.get("trust_pickle", False), "trust_pickle", where),
        source=source,
        output=_output({**found.get("output", {}), **_table(data, "output", where)}, where),
        trust_code=_bool(data.get("trust_code", False), "trust_code", where),
        code=code,
    )


def profile_from_checkpoint(
    weights: str | Path,
    architecture: str,
    classes: Sequence[str] = (),
    size: tuple[int, int] = DEFAULT_SIZE,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ModelProfile:
    """A profile for a bare checkpoint with defaults for everything else (the GUI's open dialog).

    With architecture "hf" the folder's classes, mean and std fill what the dialog leaves out.
    """
    weights = Path(weights).expanduser().resolve()
    preprocess: dict[str, Any] = {"size": list(size)}
    if mean is not None:
        preprocess["mean"] = list(mean)
    if std is not None:
        preprocess["std"] = list(std)
    data: dict[str, Any] = {
        "name": weights.stem,
        "architecture": architecture,
        "weights": str(weights),
        "preprocess": preprocess,
    }
    if classes:
        data["classes"] = list(classes)
    return parse_profile(data, weights.parent, None)


def save_profile(profile: ModelProfile, path: str | Path) -> None:
    """Write a profile as TOML that load_profile reads back to the same values."""
    path = Path(path).expanduser()
    text = profile_to_toml(profile, path.resolve().parent)
    # Never leave a file behind that load_profile would refuse.
    parse_profile(tomllib.loads(text), path.resolve().parent, path.resolve())
    # A profile is saved beside its weights (the checkpoint dialog), so a missing folder means
    # a wrong path: refuse it rather than create it as atomic_write_text would.
    if not path.parent.is_dir():
        raise InspectorError(
            f"cannot write profile '{path}': folder '{path.parent}' does not exist; "
            "choose an existing folder"
        )
    # Imported here: engine.export brings numpy and OpenCV, which reading a profile never needs
    # (the window reads profiles at start; tests/engine/backends/test_registry.py checks it).
    from engine.export import atomic_write_text

    atomic_write_text(path, text)


def profile_to_toml(profile: ModelProfile, base_dir: Path) -> str:
    """The TOML text of a profile; weights inside base_dir are written relative to it."""
    lines = [
        "# Grad-CAM Inspector model profile",
        f"name = {_toml_str(profile.name)}",
        f"architecture = {_toml_str(_architecture_text(profile.architecture, base_dir))}",
    ]
    if profile.weights is not None:
        lines.append(f"weights = {_toml_str(_weights_text(profile.weights, base_dir))}")
    if profile.classes:
        lines.append(f"classes = {_toml_list([_toml_str(c) for c in profile.classes])}")
    lines.append(f"trust_pickle = {'true' if profile.trust_pickle else 'false'}")
    if profile.code is not None:
        lines.append(f"code = {_toml_str(_weights_text(profile.code, base_dir))}")
    if profile.trust_code:
        lines.append("trust_code = true")
    pre = profile.preprocess
    lines += [
        "",
        "[preprocess]",
        *([f"size = {_toml_list([str(v) for v in pre.size])}"] if pre.size_given else []),
        f"mean = {_toml_list([_toml_float(v) for v in pre.mean])}",
        f"std = {_toml_list([_toml_float(v) for v in pre.std])}",
        f"grayscale = {_toml_str(pre.grayscale)}",
        f"layout = {_toml_str(pre.layout)}",
        *([f"resize = {_toml_str(pre.resize)}"] if pre.resize != Resize.STRETCH else []),
        *([f"crop = {_toml_float(pre.crop)}"] if pre.crop != 1.0 else []),
        "",
        "[cam]",
    ]
    cam = profile.cam
    if cam.layer is not None:
        lines.append(f"layer = {_toml_str(cam.layer)}")
    lines += [
        f"method = {_toml_str(cam.method)}",
        f"colormap = {_toml_str(cam.colormap)}",
        f"alpha = {_toml_float(cam.alpha)}",
        f"normalize = {_toml_str(cam.normalize)}",
        f"blend = {_toml_str(cam.blend)}",
        f"reshape = {_toml_str(cam.reshape)}",
        "",
        "[output]",
        f"logits = {_toml_logits(profile.output.logits)}",
        f"activation = {_toml_str(profile.output.activation)}",
    ]
    return "\n".join(lines) + "\n"


# --- field validation ------------------------------------------------------------------------


def _label(source: Path | None) -> str:
    return f"profile '{source.name}'" if source is not None else "profile"


def _fail(where: str, field: str, problem: str) -> InspectorError:
    return InspectorError(f"{where}: {field} {problem}")


def _reject_unknown(
    table: Mapping[str, Any], known: Sequence[str], prefix: str, where: str
) -> None:
    # Unknown keys are almost always typos ("colourmap") that would otherwise be silently ignored.
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else f" (known: {', '.join(known)})"
            raise _fail(where, f"'{prefix}{key}'", f"is not a profile field{extra}")


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, Mapping):
        raise _fail(where, key, f"must be a [{key}] table")
    return table


def _nonempty_str(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, field, "must be a non-empty string")
    return value


def _bool(value: Any, field: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, field, "must be true or false")
    return value


def _number(value: Any, field: str, where: str) -> float:
    # bool is an int subclass, but `alpha = true` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, field, f"must be a number, not {value!r}")
    return float(value)


def _architecture(value: Any, base_dir: Path, where: str) -> str:
    if value is None:
        raise _fail(where, "architecture", 'is missing (e.g. architecture = "resnet18")')
    arch = _nonempty_str(value, "architecture", where).strip()
    if arch.startswith(PYTHON_PREFIX):  # the file is relative to the profile
        arch = code_path(arch, base_dir)
    problem = architecture_problem(arch)  # engine/backends/: which kinds exist, what each takes
    if problem is not None:
        raise _fail(where, "architecture", problem)
    return arch


def _weights(value: Any, base_dir: Path, where: str) -> Path | None:
    if value is None:
        return None
    text = _nonempty_str(value, "weights", where)
    if "\0" in text or len(text) > _MAX_PATH_CHARS:
        raise _fail(where, "weights", f"is not a usable path ({len(text)} characters)")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise _fail(where, "weights", f"cannot be followed ({exc})") from exc


def _code(value: Any, base_dir: Path, where: str) -> Path | None:
    if value is None:
        return None
    path = Path(_nonempty_str(value, "code", where)).expanduser()
    path = (path if path.is_absolute() else base_dir / path).resolve()
    if path.suffix != ".py" or not path.is_file():
        raise _fail(where, "code", f"must name an existing .py file, not '{value}'")
    return path


def _classes(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, "classes", "must be a list of class names")
    if not value:
        raise _fail(
            where, "classes", "is empty: list the names in output order, or leave classes out"
        )
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _fail(where, "classes", f"must hold non-empty strings, not {item!r}")
    seen: set[str] = set()
    for item in value:
        if item in seen:
            raise _fail(where, "classes", f"lists '{item}' twice")
        seen.add(item)
    return tuple(value)


def _preprocess(table: Mapping[str, Any], where: str) -> PreprocessSpec:
    _reject_unknown(table, _PREPROCESS_KEYS, "preprocess.", where)
    mean = _channel_values(table.get("mean", list(IMAGENET_MEAN)), "preprocess.mean", where)
    std = _channel_values(table.get("std", list(IMAGENET_STD)), "preprocess.std", where)
    if any(v <= 0 for v in std):
        raise _fail(where, "preprocess.std", "values must be greater than 0")
    tiny = next((v for v in std if v < MIN_STD), None)
    if tiny is not None:
        raise _fail(
            where,
            "preprocess.std",
            f"value {tiny!r} is too small: below {MIN_STD:.2g} it makes the model's input "
            "infinite or NaN",
        )
    grayscale = _choice(table, "grayscale", Grayscale.REPLICATE, "preprocess.", where)
    layout = _choice(table, "layout", Layout.NCHW, "preprocess.", where)
    size = _size(table.get("size", list(DEFAULT_SIZE)), where)
    resize = _choice(table, "resize", Resize.STRETCH, "preprocess.", where)
    crop = _number(table.get("crop", 1.0), "preprocess.crop", where)
    if not 0.1 <= crop <= 1.0:
        raise _fail(where, "preprocess.crop", f"must be between 0.1 and 1, not {crop:g}")
    return PreprocessSpec(size, mean, std, grayscale, layout, "size" in table, resize, crop)


def _size(value: Any, where: str) -> tuple[int, int]:
    field = "preprocess.size"
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, field, f"must be [height, width], not {value!r}")
    for side in value:
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_SIDE:
            raise _fail(where, field, f"must hold whole numbers from 1 to {MAX_SIDE}, not {side!r}")
    return (value[0], value[1])


def _channel_values(value: Any, field: str, where: str) -> tuple[float, ...]:
    # Models take 3-channel input; gray images are replicated, so there are always 3 values.
    if not isinstance(value, list) or len(value) != 3:
        count = f"{len(value)} values" if isinstance(value, list) else repr(value)
        raise _fail(where, field, f"needs 3 values (one per RGB channel), not {count}")
    return tuple(_number(v, field, where) for v in value)


def _cam(table: Mapping[str, Any], where: str) -> CamDefaults:
    _reject_unknown(table, _CAM_KEYS, "cam.", where)
    layer = table.get("layer")
    if layer is not None:
        layer = _nonempty_str(layer, "cam.layer", where).strip()
    method = table.get("method", DEFAULT_METHOD)
    if method not in method_names():
        known = ", ".join(method_names())
        raise _fail(where, "cam.method", f"{method!r} is unknown; use {known}")
    colormap = _choice(table, "colormap", Colormap.JET, "cam.", where)
    alpha = _number(table.get("alpha", DEFAULT_ALPHA), "cam.alpha", where)
    if not 0.0 <= alpha <= 1.0:
        raise _fail(where, "cam.alpha", f"must be between 0 and 1, not {alpha:g}")
    normalize = _choice(table, "normalize", Normalize.MINMAX, "cam.", where)
    blend = _choice(table, "blend", Blend.WEIGHTED, "cam.", where)
    reshape = _choice(table, "reshape", Reshape.AUTO, "cam.", where)
    smoothing = Smoothing(
        _bool(table.get("aug_smooth", False), "cam.aug_smooth", where),
        _bool(table.get("eigen_smooth", False), "cam.eigen_smooth", where),
    )
    return CamDefaults(layer, method, colormap, alpha, normalize, blend, reshape, smoothing)


def _choice(table: Mapping[str, Any], key: str, default: C, prefix: str, where: str) -> C:
    return type(default).parse(table.get(key, default), f"{where}: {prefix}{key}")


def _output(table: Mapping[str, Any], where: str) -> OutputSpec:
    _reject_unknown(table, _OUTPUT_KEYS, "output.", where)
    activation = _choice(table, "activation", Activation.SOFTMAX, "output.", where)
    return OutputSpec(_logits_choice(table.get("logits", "auto"), where), activation)


def _logits_choice(value: Any, where: str) -> int | str:
    # An index may be written as a number or as text ("0"); both mean the same element.
    field = "output.logits"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(where, field, f'must be "auto", an index or a key name, not {value!r}')
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise _fail(where, field, 'must be "auto", an index or a key name, not ""')
        if value.lstrip("-").isdigit():
            value = int(value)
    if isinstance(value, int) and value < 0:
        raise _fail(where, field, f"index must be 0 or more, not {value}")
    return value


# --- TOML writing ----------------------------------------------------------------------------

_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            # TOML basic strings forbid raw control characters.
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_float(value: float) -> str:
    # repr() is the shortest text that reads back to the same float, and it is valid TOML.
    return repr(float(value))


def _toml_logits(value: int | str) -> str:
    return str(value) if isinstance(value, int) else _toml_str(value)


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _architecture_text(architecture: str, base_dir: Path) -> str:
    if not architecture.startswith(PYTHON_PREFIX):
        return architecture
    file, _, name = architecture[len(PYTHON_PREFIX) :].rpartition(":")
    return f"{PYTHON_PREFIX}{_weights_text(Path(file), base_dir)}:{name}"


def _weights_text(weights: Path, base_dir: Path) -> str:
    # Relative when the weights sit beside/below the profile, so the pair can be moved together.
    if weights.is_relative_to(base_dir):
        return weights.relative_to(base_dir).as_posix()
    return str(weights)
