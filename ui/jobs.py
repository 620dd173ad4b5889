"""Jobs the window sends to the worker and the results it gets back (frozen, numpy only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.batch_options import BatchOptions, BatchSummary
from engine.dataset import ImageRecord
from engine.localization import Box
from engine.methods.registry import NO_SMOOTHING, Smoothing
from engine.profile import ModelProfile
from engine.render import RenderStyle
from engine.report import ReportData, ReportFiles

if TYPE_CHECKING:  # engine.cam and engine.layers import torch: the GUI thread only names them
    from engine.cam import CamResult
    from engine.layers import LayerInventory

Target = str | int  # "pred" or a class index

BLUR_SIGMA = 4.0  # pixels; what the blur toggle means, in the view and in folder exports


@dataclass(frozen=True)
class CheckpointSpec:
    """A bare weights file and what the open-checkpoint dialog asked about it."""

    weights: Path
    architecture: str
    classes: tuple[str, ...]
    size: tuple[int, int]
    save_profile_to: Path | None = None
    mean: tuple[float, ...] | None = None  # None: the profile default (ImageNet)
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LoadModel:
    """Read a profile (or a checkpoint) and build the engine on a device, in the worker.

    Reading a profile checks the architecture against torchvision, so it imports torch too.
    """

    profile_path: Path | None = None
    checkpoint: CheckpointSpec | None = None
    device: str = "auto"
    # The user said "load anyway" in the trust dialog; remember: write it into the profile.
    trust_pickle: bool = False
    trust_code: bool = False
    remember_trust: bool = False


@dataclass(frozen=True)
class Explain:
    """One image's map: interactive, newest wins; ``prefetch`` is computed next if idle."""

    job_id: int
    record: ImageRecord
    layer: str
    target: Target
    method: str
    blur: bool = False
    prefetch: tuple[ImageRecord, ...] = ()
    smoothing: Smoothing = NO_SMOOTHING  # aug: passes of its own, no capture; eigen: from one


@dataclass(frozen=True)
class ExportFolder:
    """The batch command line's export of these records, with the command line's options."""

    job_id: int
    records: tuple[ImageRecord, ...]
    options: BatchOptions


@dataclass(frozen=True)
class ExportReport:
    """The session's report, its gallery drawn by the loaded model (as `report` on the CLI)."""

    job_id: int
    data: ReportData  # read from the session on the GUI thread, which owns it
    output: Path


@dataclass(frozen=True)
class ReportWritten:
    job_id: int
    files: ReportFiles


@dataclass(frozen=True)
class ModelLoaded:
    profile: ModelProfile
    device: str
    classes: tuple[str, ...]
    inventory: LayerInventory
    seconds: float
    cuda_available: bool
    weights_sha256: str = ""  # "" for random initialisation; sessions compare it


@dataclass(frozen=True)
class Explained:
    """A finished map with the decoded image it belongs to."""

    job_id: int
    record: ImageRecord
    image: np.ndarray
    boxes: tuple[Box, ...]
    result: CamResult
    milliseconds: float
    model_pass: bool  # False: drawn from a cached capture


@dataclass(frozen=True)
class JobFailed:
    """A job ended with a message a person can act on; ``record`` is set for image jobs."""

    job_id: int
    kind: str  # "model", "explain", "export" or "report"
    message: str
    record: ImageRecord | None = None
    # A model load that would run the file's code: "pickle" or "code" (engine TrustNeeded).
    trust: str = ""


@dataclass(frozen=True)
class ExportProgress:
    job_id: int
    done: int
    total: int
    failed: int
    seconds: float


@dataclass(frozen=True)
class ExportFinished:
    job_id: int
    summary: BatchSummary


@dataclass(frozen=True)
class TrustCheck:
    """A trust tool (engine.choices.TrustTool) on one image with the window's CAM options."""

    job_id: int
    tool: str
    record: ImageRecord
    layer: str
    target: Target
    method: str
    style: RenderStyle
    smoothing: Smoothing = NO_SMOOTHING


@dataclass(frozen=True)
class TrustChecked:
    """The tool's figure (RGB uint8, None for the metrics) and text, or the error that ended it."""

    job_id: int
    tool: str
    record: ImageRecord
    figure: np.ndarray | None
    text: str
    failed: bool = False


@dataclass(frozen=True)
class ClassTrust:
    """After a folder export: the class-average maps (RGB uint8) and their summary lines."""

    job_id: int
    figure: np.ndarray
    lines: tuple[str, ...]
