"""The backend registry: which backend loads an architecture, and what the dialog and bundle need.

Adding a kind of model: one module here (a Backend subclass, see base.py), one line in BACKENDS,
its extra in pyproject.toml; the PyInstaller spec bundles its packages from this registry.
Importing this package imports no torch (the window reads it at start).
"""

from __future__ import annotations

from pathlib import Path

from engine.backends.base import Backend
from engine.backends.hf_backend import HfBackend
from engine.backends.onnx_backend import OnnxBackend
from engine.backends.python_backend import PythonBackend
from engine.backends.timm_backend import TimmBackend
from engine.backends.torchscript_backend import TorchScriptBackend
from engine.backends.torchvision_backend import TorchvisionBackend
from engine.errors import InspectorError

# In the order the open dialog and messages list them.
BACKENDS: tuple[Backend, ...] = (
    TorchvisionBackend(),
    TimmBackend(),
    OnnxBackend(),
    HfBackend(),
    PythonBackend(),
    TorchScriptBackend(),
)
# Asked most specific first: torchvision, which takes any bare name, is asked last.
_LOOKUP: tuple[Backend, ...] = (*BACKENDS[1:], BACKENDS[0])


def backend_for(architecture: str) -> Backend:
    """The backend that loads a profile's architecture."""
    return next(backend for backend in _LOOKUP if backend.matches(architecture))


def architecture_problem(architecture: str) -> str | None:
    """What is wrong with a profile's architecture (checked without loading it); None: fine."""
    problem = backend_for(architecture).problem(architecture)
    return None if problem is None else f"{problem}; an architecture is {known_kinds()}"


def known_kinds() -> str:
    """The ways a profile can name an architecture, in words."""
    kinds = [backend.syntax for backend in BACKENDS if backend.syntax is not None]
    return f"{', '.join(kinds[:-1])} or {kinds[-1]}"


def check_not_foreign(path: Path, loader: Backend) -> None:
    """Refuse a weights file that another backend recognises as its own kind of model."""
    for backend in BACKENDS:
        refusal = None if backend is loader else backend.refusal(path)
        if refusal is not None:
            raise InspectorError(refusal)


def dialog_architectures() -> tuple[str, ...]:
    """The architectures the open dialog lists (any other name can be typed)."""
    return tuple(name for backend in BACKENDS for name in backend.choices)


def weights_filter() -> str:
    """The open dialog's file filter: every backend's weights files, then all files."""
    suffixes = dict.fromkeys(suffix for backend in BACKENDS for suffix in backend.suffixes)
    patterns = " ".join(f"*{suffix}" for suffix in suffixes)
    return f"Weights ({patterns});;All files (*)"


def architecture_for_file(path: str | Path) -> str | None:
    """The architecture a weights file implies by its suffix (an .onnx file is the model)."""
    suffix = Path(path).suffix.lower()
    return next(
        (b.file_architecture for b in BACKENDS if b.file_architecture and suffix in b.suffixes),
        None,
    )


def bundled_packages() -> tuple[str, ...]:
    """Packages the backends import lazily, which PyInstaller must be told to collect."""
    return tuple(dict.fromkeys(package for backend in BACKENDS for package in backend.packages))
