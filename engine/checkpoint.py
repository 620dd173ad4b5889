"""Loading a model via its backend; the safe state_dict loader that torchvision and timm share."""

from __future__ import annotations

import hashlib
import itertools
import pickle
import re
import stat
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file as load_safetensors
from torch import nn

from engine.backends import backend_for, check_not_foreign
from engine.backends.base import StateDictBackend
from engine.backends.hf_backend import is_hf_folder
from engine.backends.python_backend import pickle_with_code, refuse_untrusted
from engine.errors import InspectorError, TrustNeeded, first_line, stat_file
from engine.heads import head_fits, head_outputs
from engine.profile import ModelProfile, PreprocessSpec

# Where training scripts commonly tuck the state_dict inside a checkpoint dict.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model", "net")
# timm's training script saves an exponential moving average of the weights beside them, and
# timm's loader prefers it (load_state_dict(use_ema=True)): so do we, and say so.
EMA_KEYS: tuple[str, ...] = ("state_dict_ema", "model_ema")
# Prefixes added by DataParallel, torch.compile, Lightning modules, wrapper nets and training
# scripts that hold the classifier as a part ("a ResNet18 backbone").
STRIP_PREFIXES: tuple[str, ...] = (
    "module.",
    "_orig_mod.",
    "model.",
    "net.",
    "backbone.",
    "encoder.",
)
# Auxiliary heads of inception_v3/googlenet: we build without them, so their weights are spare.
_AUX_PREFIXES: tuple[str, ...] = ("AuxLogits.", "aux1.", "aux2.")
_MAX_LISTED = 3
# torch < 2.6 says "Unsupported global: GLOBAL x", newer ones "Trying to load unsupported
# GLOBAL x whose module y is blocked".
_UNSUPPORTED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)")

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-explain model: eval mode, on the CPU, float32."""

    model: nn.Module
    classes: tuple[str, ...]
    weights_sha256: str | None  # None when the model was randomly initialised
    notes: tuple[str, ...]  # human-readable remarks on what loading had to do
    # Largest batch the model accepts (ONNX exports often fix the batch to 1); None: any.
    max_batch: int | None = None
    # The preprocessing the model file fixes (an ONNX input size); None: the profile's.
    preprocess: PreprocessSpec | None = None


def load_model(profile: ModelProfile, trust_pickle: bool = False) -> LoadedModel:
    """Build profile.architecture and load profile.weights into it; InspectorError if unfit.

    The backend the architecture names loads it (engine/backends/). Pickled Python objects
    are refused unless trust_pickle (here or in the profile) is set.
    """
    return backend_for(profile.architecture).load(profile, trust_pickle)


def load_state_dict_model(
    backend: StateDictBackend, profile: ModelProfile, trust_pickle: bool
) -> LoadedModel:
    """The loader of backends that build by name: the checkpoint's state_dict, made to fit."""
    if profile.weights is None:
        return _random_model(backend, profile)
    path = profile.weights
    content, notes = _read_checkpoint(path, trust_pickle or profile.trust_pickle, backend, profile)
    if isinstance(content, nn.Module):
        model, classes, more = _from_module(content, profile)
    else:
        model, classes, more = _from_state_dict(content, profile, path, backend)
    model = model.to("cpu", torch.float32).eval()
    return LoadedModel(model, classes, sha256_of(path), (*notes, *more))


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large checkpoints need no extra memory."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InspectorError(f"cannot read '{path}': {exc.strerror or exc}") from exc
    return digest.hexdigest()


def build_model(
    architecture: str,
    num_classes: int,
    *,
    meta: bool = False,
    init: bool = True,
    in_chans: int = 3,
) -> nn.Module:
    """A classifier built by name, with random weights (never downloaded).

    meta=True allocates no memory. init=False skips the custom initialisation of torchvision
    nets that offer it, for weights about to be overwritten anyway. in_chans is for timm models
    (torchvision builders take 3-channel input only).
    """
    backend = backend_for(architecture)
    if not isinstance(backend, StateDictBackend):
        raise InspectorError(f"architecture '{architecture}' is loaded from its file, not built")
    return backend.build(architecture, num_classes, meta=meta, init=init, in_chans=in_chans)


def head_key(state: Mapping[str, torch.Tensor]) -> str | None:
    """The final classifier's weight: the last 2-D+ '.weight' in state_dict (registration) order."""
    # >=2 rather than ==2 so squeezenet's 1x1-conv head counts too; norm weights are 1-D.
    found = None
    for key, value in state.items():
        if key.endswith(".weight") and value.ndim >= 2:
            found = key
    return found


def _random_model(backend: StateDictBackend, profile: ModelProfile) -> LoadedModel:
    if not profile.classes:
        where = profile.source.name if profile.source is not None else profile.name
        raise InspectorError(f"profile '{where}' has neither weights nor classes; add one of them")
    outputs = head_outputs(len(profile.classes), profile.output.activation)
    model = backend.build(profile.architecture, outputs)
    model = model.to("cpu", torch.float32).eval()
    return LoadedModel(model, profile.classes, None, ("no weights: random initialisation",))


# --- reading files ---------------------------------------------------------------------------


def _read_checkpoint(
    path: Path, trust: bool, backend: StateDictBackend, profile: ModelProfile
) -> tuple[Any, tuple[str, ...]]:
    """The unpickled/decoded content of a weights file and notes on how it was read.

    A trusted full pickle is unpickled with the classes of the profile's ``code`` file, which
    runs only when code is trusted too.
    """
    check_file(path)
    check_not_foreign(path, backend)  # an .onnx or TorchScript file, before torch.load sees it
    if _is_safetensors(path):
        try:
            return load_safetensors(str(path), device="cpu"), ()
        except Exception as exc:  # the Rust reader raises its own error types
            raise _corrupt(path, exc) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True), ()
    except pickle.UnpicklingError as exc:
        needed = _UNSUPPORTED_GLOBAL.search(str(exc))
        if needed is None:
            raise _corrupt(path, exc) from exc
        if not trust:
            raise _pickle_refused(path, needed.group(1).rstrip(".")) from exc
    except Exception as exc:  # zip, EOF and key errors all mean "not a readable checkpoint"
        raise _corrupt(path, exc) from exc
    return _load_trusted_pickle(path, _code_file(profile))


def _code_file(profile: ModelProfile) -> Path | None:
    """The .py file whose classes unpickling may need; refused unless code is trusted."""
    if profile.code is None:
        return None
    if not profile.trust_code:
        raise refuse_untrusted(f"code = '{profile.code.name}'", profile.code)
    return profile.code


def _load_trusted_pickle(path: Path, code: Path | None) -> tuple[Any, tuple[str, ...]]:
    message = f"loading '{path.name}' with full unpickling (trust_pickle): this can run its code"
    # Attributed to load_model's caller: load_model, Backend.load, load_state_dict_model and
    # _read_checkpoint lie between.
    warnings.warn(message, UserWarning, stacklevel=6)
    options: dict[str, Any] = {} if code is None else {"pickle_module": pickle_with_code(code)}
    try:
        content = torch.load(path, map_location="cpu", weights_only=False, **options)
    except InspectorError:
        raise
    except Exception as exc:  # e.g. the pickled model's class cannot be imported here
        raise InspectorError(f"cannot unpickle '{path.name}': {_unpickle_hint(exc)}") from exc
    used = f" with the classes of '{code.name}'" if code is not None else ""
    return content, (f"loaded pickled objects from '{path.name}'{used} (trusted)",)


def _unpickle_hint(exc: Exception) -> str:
    text = first_line(exc)
    if isinstance(exc, AttributeError) and "__main__" in text:
        # Saved from a training script: its classes live in that script, not here.
        return f'{text}; set code = "<the script that defines it>.py" in the profile'
    return text


def check_file(path: Path) -> None:
    """Refuse a weights path that is missing, not a file or empty, naming which."""
    info = stat_file(path, "weights")
    if is_hf_folder(path):
        raise InspectorError(
            f"'{path.name}' is a Hugging Face save_pretrained folder: set architecture = "
            '"hf", or open the folder itself as the profile'
        )
    if not stat.S_ISREG(info.st_mode):
        raise InspectorError(f"weights path is not a file: {path}")
    if info.st_size == 0:
        raise InspectorError(f"weights file '{path.name}' is empty (0 bytes)")


def _is_safetensors(path: Path) -> bool:
    if path.suffix.lower() == ".safetensors":
        return True
    # Sniff too: an 8-byte header length then a JSON header, whatever the file is named.
    try:
        with path.open("rb") as fh:
            head = fh.read(9)
    except OSError as exc:
        raise InspectorError(f"cannot read '{path}': {exc.strerror or exc}") from exc
    return len(head) == 9 and head[8:9] == b"{"


def _corrupt(path: Path, exc: BaseException) -> InspectorError:
    return InspectorError(
        f"'{path.name}' is not a readable checkpoint (truncated, corrupt or not a model file: "
        f"{first_line(exc)})"
    )


def _pickle_refused(path: Path, needed: str) -> InspectorError:
    return TrustNeeded(
        f"'{path.name}' is a full pickled model or holds other Python objects ({needed}), "
        "which can run code when loaded; load it only if you trust its source: "
        "set trust_pickle = true in the profile or pass --trust-pickle",
        "pickle",
    )


# --- pickled modules -------------------------------------------------------------------------


def _from_module(
    module: nn.Module, profile: ModelProfile
) -> tuple[nn.Module, tuple[str, ...], tuple[str, ...]]:
    if isinstance(module, nn.DataParallel | nn.parallel.DistributedDataParallel):
        module = module.module  # the wrapper only matters for multi-GPU training
    key = head_key(module.state_dict())
    count = module.state_dict()[key].shape[0] if key is not None else None
    classes, notes = resolve_classes(profile, count, f"checkpoint head {key}")
    note = f"used the pickled {type(module).__name__} as is; architecture ignored"
    return module, classes, (note, *notes)


# --- state dicts -----------------------------------------------------------------------------


def _from_state_dict(
    content: Any, profile: ModelProfile, path: Path, backend: StateDictBackend
) -> tuple[nn.Module, tuple[str, ...], tuple[str, ...]]:
    found, ema_notes = _ema_state_dict(content)
    if found is None:
        found = _find_state_dict(content, depth=0)
    if isinstance(found, nn.Module):  # a trusted pickle holding {"model": <module>, ...}
        return _from_module(found, profile)
    if found is None:
        raise InspectorError(_no_state_dict_message(path, content))
    arch = profile.architecture
    # A two-class sigmoid profile is a one-output binary model (engine/heads.py).
    guess = head_outputs(len(profile.classes), profile.output.activation) or 1000
    model = _blank_model(backend, arch, guess)
    prefix, notes = _prefix_to_strip(found, model.state_dict().keys())
    state = _with_prefix_removed(found, prefix)
    key = head_key(model.state_dict())
    count = state[key].shape[0] if key in state and state[key].ndim >= 2 else None
    classes, class_notes = resolve_classes(profile, count, f"checkpoint head {key}")
    in_chans, chans_notes = _input_channels(backend, state, model.state_dict())
    outputs = count if count is not None else guess
    if outputs != guess or in_chans != 3:
        model = _blank_model(backend, arch, outputs, in_chans)
    model_state = model.state_dict()
    state, aux_notes = _drop_aux(state, model_state.keys())
    state = _fill_counters(state, model_state)
    _check_fit(state, model_state, path, arch)
    state, dtype_notes = _as_float32(state)
    try:
        model.load_state_dict(_with_versions(state, found, prefix, model_state), strict=True)
    except RuntimeError as exc:  # the checks above should have caught it; stay user-readable
        raise InspectorError(f"weights '{path.name}' do not fit {arch}: {first_line(exc)}") from exc
    said = (*ema_notes, *notes, *aux_notes, *dtype_notes, *class_notes, *chans_notes)
    return model, classes, said


def _ema_state_dict(content: Any) -> tuple[Mapping[str, torch.Tensor] | None, tuple[str, ...]]:
    if not isinstance(content, Mapping):
        return None, ()
    for key in EMA_KEYS:
        found = _find_state_dict(content.get(key), depth=2)
        if isinstance(found, Mapping):
            return found, (f"used the averaged weights under '{key}', as timm's loader does",)
    return None, ()


def _find_state_dict(content: Any, depth: int) -> Mapping[str, torch.Tensor] | nn.Module | None:
    if isinstance(content, nn.Module):
        return content
    if not isinstance(content, Mapping) or not content:
        return None
    if all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items()):
        return content  # as is: it may carry the _metadata module versions
    # Wrapped at most twice, e.g. {"model": {"state_dict": ...}}; deeper is not a checkpoint.
    if depth < 2:
        for key in WRAPPER_KEYS:
            found = _find_state_dict(content.get(key), depth + 1)
            if found is not None:
                return found
    return None


def _no_state_dict_message(path: Path, content: Any) -> str:
    if isinstance(content, Mapping):
        keys = ", ".join(str(k) for k in list(content)[:6]) or "none"
        what = f"a dict with keys {keys}"
    else:
        what = f"a {type(content).__name__}"
    wrappers = ", ".join(f"'{k}'" for k in WRAPPER_KEYS)
    return (
        f"'{path.name}' holds {what}, not model weights; save model.state_dict(), "
        f"bare or under one of {wrappers}"
    )


def _blank_model(
    backend: StateDictBackend, architecture: str, num_classes: int, in_chans: int = 3
) -> nn.Module:
    """A model for a checkpoint to overwrite completely, left uninitialised when that is safe."""
    # Skipping random init matters: it takes seconds for e.g. convnext_base or vgg16.
    try:
        model = backend.build(architecture, num_classes, meta=True, in_chans=in_chans)
    except InspectorError:
        raise
    except Exception:  # some builders copy data at init, which meta tensors cannot do
        return backend.build(architecture, num_classes, init=False, in_chans=in_chans)
    if not state_covers_all_tensors(model):
        return backend.build(architecture, num_classes, init=False, in_chans=in_chans)
    return model.to_empty(device="cpu")


def _input_channels(
    backend: StateDictBackend,
    state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
) -> tuple[int, tuple[str, ...]]:
    """The input channels the checkpoint expects (1 for grayscale) where the builder takes any."""
    key = backend.input_channels_key(model_state)
    if key is None or key not in state or state[key].ndim != 4 or state[key].shape[1] == 3:
        return 3, ()
    count = int(state[key].shape[1])
    return count, (f"built with {count} input channel(s), as checkpoint {key} expects",)


def state_covers_all_tensors(model: nn.Module) -> bool:
    """Whether loading a full state_dict sets every tensor the model holds."""
    # Non-persistent buffers and plain tensor attributes would keep uninitialised memory.
    keys = set(model.state_dict())
    if any(name not in keys for name, _ in model.named_buffers()):
        return False
    return not any(
        isinstance(value, torch.Tensor)
        for module in model.modules()
        for value in vars(module).values()
    )


def _prefix_to_strip(
    state: Mapping[str, torch.Tensor], expected: Iterable[str]
) -> tuple[str, tuple[str, ...]]:
    """The wrapper prefix whose removal makes most keys fit the model ("" for none), and a note."""
    expected = set(expected)
    best_prefix, best_score = "", _overlap(state, expected)
    for prefix in _prefix_chains():
        score = _overlap(_with_prefix_removed(state, prefix), expected)
        if score > best_score:  # strictly better, so the shortest chain wins ties
            best_prefix, best_score = prefix, score
    if not best_prefix:
        return "", ()
    dropped = sum(1 for key in state if not key.startswith(best_prefix))
    extra = f" (ignored {dropped} other entries)" if dropped else ""
    return best_prefix, (f"stripped '{best_prefix}' prefix{extra}",)


def _prefix_chains() -> list[str]:
    # Wrappers stack, e.g. DataParallel around a Lightning module gives "module.model.".
    return ["".join(p) for n in (1, 2, 3) for p in itertools.product(STRIP_PREFIXES, repeat=n)]


def _with_prefix_removed(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _with_versions(
    state: StateDict,
    found: Mapping[str, torch.Tensor],
    prefix: str,
    model_state: Mapping[str, torch.Tensor],
) -> Mapping[str, torch.Tensor]:
    """state plus the per-module format versions that some modules' loaders require (MNASNet)."""
    # The checkpoint's own versions say how it was written; the model's fill any gaps
    # (safetensors files and rebuilt dicts carry none).
    versions = dict(getattr(model_state, "_metadata", {}))
    for name, info in getattr(found, "_metadata", {}).items():
        if name == prefix.removesuffix("."):
            versions[""] = info
        elif name.startswith(prefix):
            versions[name[len(prefix) :]] = info
    out = OrderedDict(state)
    out._metadata = versions  # type: ignore[attr-defined]
    return out


def _overlap(state: Mapping[str, torch.Tensor], expected: set[str]) -> int:
    return sum(1 for key in state if key in expected)


def resolve_classes(
    profile: ModelProfile, count: int | None, source: str, owner: str = "checkpoint head"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The profile's classes, checked against count outputs; class_0.. when it lists none.

    source names where a count was read, for the note; owner, for the mismatch error.
    """
    if profile.classes:
        if count is not None and not head_fits(
            count, len(profile.classes), profile.output.activation
        ):
            where = profile.source.name if profile.source is not None else profile.name
            raise InspectorError(
                f"{owner} has {count} classes, profile '{where}' lists {len(profile.classes)}"
            )
        return profile.classes, ()
    if count is None:
        return (), ()  # the fit check then reports the missing head
    names = tuple(f"class_{i}" for i in range(count))
    return names, (f"inferred {count} classes from {source}",)


def _drop_aux(state: StateDict, expected: Iterable[str]) -> tuple[StateDict, tuple[str, ...]]:
    expected = set(expected)
    spare = [k for k in state if k not in expected and k.startswith(_AUX_PREFIXES)]
    if not spare:
        return state, ()
    kept = {k: v for k, v in state.items() if k not in set(spare)}
    return kept, (f"ignored {len(spare)} auxiliary-classifier tensors",)


def _fill_counters(state: StateDict, model_state: Mapping[str, torch.Tensor]) -> StateDict:
    # Old checkpoints lack BatchNorm's step counter; it has no effect in eval mode.
    filled = dict(state)
    for key, value in model_state.items():
        if key.endswith("num_batches_tracked") and key not in filled:
            filled[key] = torch.zeros_like(value)
    return filled


def _check_fit(
    state: StateDict, model_state: Mapping[str, torch.Tensor], path: Path, arch: str
) -> None:
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    shapes = [
        f"shape {k} is {list(state[k].shape)} in the checkpoint, "
        f"{list(model_state[k].shape)} in the model"
        for k in model_state
        if k in state and state[k].shape != model_state[k].shape
    ]
    parts = []
    if missing:
        parts.append("missing " + _listed(missing))
    if unexpected:
        parts.append("unexpected " + _listed(unexpected))
    if shapes:
        parts.append(_listed(shapes, sep="; "))
    if parts:
        raise InspectorError(f"weights '{path.name}' do not fit {arch}: " + "; ".join(parts))


def _listed(items: list[str], sep: str = ", ") -> str:
    more = len(items) - _MAX_LISTED
    text = sep.join(items[:_MAX_LISTED])
    return text + (f" (+{more} more)" if more > 0 else "")


def _as_float32(state: StateDict) -> tuple[StateDict, tuple[str, ...]]:
    converted = sorted(
        {str(v.dtype).removeprefix("torch.") for v in state.values() if _needs_cast(v)}
    )
    if not converted:
        return state, ()
    out = {k: v.to(torch.float32) if _needs_cast(v) else v for k, v in state.items()}
    return out, (f"converted {', '.join(converted)} weights to float32",)


def _needs_cast(value: torch.Tensor) -> bool:
    return value.is_floating_point() and value.dtype != torch.float32
