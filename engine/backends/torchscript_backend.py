"""TorchScript, refused with the reason: a compiled graph has no layers to hook."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.base import Backend
from engine.errors import InspectorError

if TYPE_CHECKING:
    from engine.checkpoint import LoadedModel
    from engine.profile import ModelProfile

ARCHITECTURE = "torchscript"
_REASON = (
    "runs a compiled graph, so hooks cannot be attached to its layers; "
    "save model.state_dict() (or export to ONNX) instead"
)


class TorchScriptBackend(Backend):
    """Recognises torch.jit.save archives, whatever their extension, to refuse them."""

    name = "torchscript"

    def matches(self, architecture: str) -> bool:
        return architecture == ARCHITECTURE

    def problem(self, architecture: str) -> str | None:
        return f"'{architecture}' is refused: a TorchScript model {_REASON}"

    def load(self, profile: ModelProfile, trust_pickle: bool) -> LoadedModel:
        # Reached only by a profile built in code: reading one reports problem() already.
        raise InspectorError(f"a TorchScript model {_REASON}")

    def refusal(self, path: Path) -> str | None:
        # Checked before torch.load sees the file, which would warn and load it as a module.
        if not zipfile.is_zipfile(path):
            return None
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # torch.load reports a damaged file better
        # The test torch.load itself uses: TorchScript archives hold <root>/constants.pkl.
        if any(name.split("/", 1)[-1] == "constants.pkl" for name in names):
            return f"'{path.name}' is a TorchScript model: it {_REASON}"
        return None
