"""The Backend base: what every kind of model says about itself, and the state-dict kind's loader.

A backend module must import without torch: the registry is read when a profile is parsed and
by the open dialog, both at window start, before the worker thread has imported torch. Code that
needs torch, timm or onnx imports it inside the function that uses it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from engine.errors import InspectorError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.checkpoint import LoadedModel
    from engine.profile import ModelProfile

# What torch.save, safetensors and training frameworks name their weights files.
STATE_DICT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


class Backend(ABC):
    """One kind of model: which architectures name it, how it loads, what it needs installed."""

    name: ClassVar[str]
    # How a profile names this kind, as listed when an architecture is unknown; None: not listed.
    syntax: ClassVar[str | None] = None
    # The pip extra that installs its packages (pyproject.toml); None: a core dependency.
    extra: ClassVar[str | None] = None
    # Packages imported only when a model loads (require() hides them from PyInstaller's
    # analysis): the spec bundles them, reading bundled_packages().
    packages: ClassVar[tuple[str, ...]] = ()
    # The open dialog: the weights files it offers, the architectures it lists, and the
    # architecture a picked file implies (an .onnx file is the model itself).
    suffixes: ClassVar[tuple[str, ...]] = ()
    choices: ClassVar[tuple[str, ...]] = ()
    file_architecture: ClassVar[str | None] = None

    @abstractmethod
    def matches(self, architecture: str) -> bool:
        """Whether this backend loads the profile architecture ``architecture``."""

    def problem(self, architecture: str) -> str | None:
        """What is wrong with a matched architecture, found without loading anything; None: ok."""
        return None

    @abstractmethod
    def load(self, profile: ModelProfile, trust_pickle: bool) -> LoadedModel:
        """The profile's model, eval mode, on the CPU, float32; InspectorError if unfit."""

    def profile_defaults(self, weights: Path | None) -> dict[str, Any]:
        """Profile values the weights already hold (classes, [preprocess]); a profile's own
        values win. Read without torch: profiles are parsed at window start."""
        return {}

    def refusal(self, path: Path) -> str | None:
        """Why ``path``, given as weights to another backend, is this backend's kind instead."""
        return None

    def require(self, module: str, architecture: str) -> ModuleType:
        """Import an optional package, or say which extra installs it."""
        # Optional extras are imported only when a profile needs them: most users never do.
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise InspectorError(
                f"architecture '{architecture}' needs the {module} package, which is not "
                f"installed: pip install 'gradcam-inspector[{self.extra}]'"
            ) from exc


class StateDictBackend(Backend):
    """A classifier built by name with random weights, then given a checkpoint's state_dict."""

    suffixes = STATE_DICT_SUFFIXES

    @abstractmethod
    def build(
        self,
        architecture: str,
        num_classes: int,
        *,
        meta: bool = False,
        init: bool = True,
        in_chans: int = 3,
    ) -> nn.Module:
        """The architecture with random weights (never downloaded); see checkpoint.build_model."""

    def input_channels_key(self, model_state: Mapping[str, torch.Tensor]) -> str | None:
        """The weight whose shape[1] the model's input channels follow; None: always 3."""
        return None

    def load(self, profile: ModelProfile, trust_pickle: bool) -> LoadedModel:
        from engine.checkpoint import load_state_dict_model  # imports torch

        return load_state_dict_model(self, profile, trust_pickle)
