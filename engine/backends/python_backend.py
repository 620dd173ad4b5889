"""The user's own model code ("python:<file.py>:<callable>"), run only when code is trusted.

The callable returns an nn.Module (given num_classes when it takes it) that a state_dict is
loaded into exactly as for torchvision. "python:<file.py>" without a callable is what a
profile's ``code = "<file.py>"`` means when it names no architecture: the file's classes
unpickle a trusted full model saved from a script (``__main__.MyNet``).
"""

from __future__ import annotations

import importlib.util
import inspect
import pickle
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from engine.backends.base import StateDictBackend
from engine.errors import InspectorError, TrustNeeded, first_line

if TYPE_CHECKING:
    from torch import nn

    from engine.checkpoint import LoadedModel
    from engine.profile import ModelProfile

PREFIX = "python:"


def split(architecture: str) -> tuple[Path, str]:
    """The file and the callable's name ("" for none) of a python: architecture."""
    rest = architecture[len(PREFIX) :].strip()
    file, sep, name = rest.rpartition(":")
    # A Windows drive ("C:\\net.py") holds a colon too: a callable is an identifier.
    if not sep or not name.isidentifier():
        return Path(rest), ""
    return Path(file), name


def code_path(architecture: str, base_dir: Path) -> str:
    """The architecture with its file made absolute against the profile's folder."""
    file, name = split(architecture)
    file = (file if file.expanduser().is_absolute() else base_dir / file).expanduser().resolve()
    return f"{PREFIX}{file}" + (f":{name}" if name else "")


def refuse_untrusted(what: str, file: Path) -> TrustNeeded:
    """The one-line refusal to run a Python file the user has not said they trust."""
    return TrustNeeded(
        f"{what} runs the Python file '{file.name}', which can do anything your account can; "
        "run it only if you trust it: set trust_code = true in the profile or pass --trust-code",
        "code",
    )


class PythonBackend(StateDictBackend):
    """A model built by the user's own function or class, from a .py file beside the profile."""

    name = "python"
    syntax = "python:<file.py>:<callable>"

    def matches(self, architecture: str) -> bool:
        return architecture.startswith(PREFIX)

    def problem(self, architecture: str) -> str | None:
        file, _ = split(architecture)
        if file.suffix != ".py":
            return f"'{architecture}' must name a .py file: python:<file.py>:<callable>"
        if not file.is_file():
            return f"Python file not found: {file}"
        return None

    def load(self, profile: ModelProfile, trust_pickle: bool) -> LoadedModel:
        file, name = split(profile.architecture)
        if not profile.trust_code:  # checked before anything of the file is read
            raise refuse_untrusted(f"architecture 'python:{file.name}:{name}'", file)
        if not name and profile.weights is None:
            raise InspectorError(
                f"code = '{file.name}' with no architecture needs weights: the full pickled "
                "model it unpickles"
            )
        return super().load(profile, trust_pickle)

    def build(
        self,
        architecture: str,
        num_classes: int,
        *,
        meta: bool = False,
        init: bool = True,
        in_chans: int = 3,
    ) -> nn.Module:
        import torch
        from torch import nn

        file, name = split(architecture)
        if not name:
            raise InspectorError(
                f"the weights are a state_dict: name what builds the model, "
                f"architecture = 'python:{file.name}:<callable>'"
            )
        builder = getattr(user_module(file), name, None)
        if not callable(builder):
            raise InspectorError(f"'{file.name}' defines no callable '{name}'")
        kwargs = {"num_classes": num_classes} if _takes_num_classes(builder) else {}
        try:
            with torch.device("meta") if meta else torch.device("cpu"):
                model = builder(**kwargs)
        except Exception as exc:  # the user's code can raise anything
            if meta:
                raise  # the caller builds again on the CPU
            raise InspectorError(f"'{file.name}:{name}' failed: {first_line(exc)}") from exc
        if not isinstance(model, nn.Module):
            raise InspectorError(
                f"'{file.name}:{name}' returned a {type(model).__name__}, not a torch nn.Module"
            )
        return model


def _takes_num_classes(builder: Any) -> bool:
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False
    return "num_classes" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


_MODULES: dict[tuple[Path, float], ModuleType] = {}


def user_module(file: Path) -> ModuleType:
    """The user's file run once as a module (again when it changes); only for trusted code."""
    try:
        key = (file, file.stat().st_mtime)
    except OSError as exc:
        raise InspectorError(f"cannot read '{file}': {exc.strerror or exc}") from exc
    if key in _MODULES:
        return _MODULES[key]
    name = f"gradcam_inspector_user_{len(_MODULES)}_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InspectorError(f"cannot import '{file.name}' as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a syntax error, a missing import...
        del sys.modules[name]
        raise InspectorError(f"running '{file.name}' failed: {first_line(exc)}") from exc
    _MODULES[key] = module
    return module


def pickle_with_code(file: Path) -> SimpleNamespace:
    """A pickle module for torch.load that finds __main__.X (and <file stem>.X) in file.

    A model saved from ``python train.py`` names its class ``__main__.MyNet``; here that is
    the class the user's file defines, wherever this program's own __main__ is.
    """
    module = user_module(file)

    class CodeUnpickler(pickle.Unpickler):
        def find_class(self, module_name: str, name: str) -> Any:
            if module_name in ("__main__", file.stem) and hasattr(module, name):
                return getattr(module, name)
            return super().find_class(module_name, name)

    return SimpleNamespace(
        __name__="pickle", Unpickler=CodeUnpickler, load=pickle.load, loads=pickle.loads
    )
