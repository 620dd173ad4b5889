"""The main window: docks, toolbar and menus wired to the view state and the CAM worker."""

from __future__ import annotations

import dataclasses
import logging
import sys
import tomllib
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolBar,
)

from engine import __version__
from engine.batch_options import BatchOptions
from engine.choices import Colormap
from engine.dataset import ImageRecord, scan_images
from engine.errors import InspectorError
from engine.export import ensure_output_dir
from engine.localization import energy_in_box, pointing_hit
from engine.map_files import MapFiles, map_title, safe_layer_name, write_map_files
from engine.profile import demo_profile_path
from engine.render import render_overlay
from engine.report import ReportFiles, write_report
from engine.resources import demo_images_dir
from engine.session import Session, default_session_path
from ui.about import APP_NAME, AboutInfo, gather, show_about
from ui.checkpoint_dialog import CheckpointDialog
from ui.images_dock import ImagesDock, RowResult
from ui.jobs import (
    Explain,
    Explained,
    ExportFinished,
    ExportFolder,
    ExportProgress,
    JobFailed,
    LoadModel,
    ModelLoaded,
)
from ui.model_dock import ModelDock
from ui.overlay_view import OverlayView
from ui.prediction_panel import PredictionPanel
from ui.preload import preload_torch_libraries
from ui.state import CAM_FIELDS, MODE_LABELS, MODES, ViewOptions, ViewState
from ui.summary_dock import SummaryDock
from ui.worker import WorkerThread

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1
MAX_RECENT = 8
PREFETCH_COUNT = 2
SHOWN_CACHE_SIZE = 8  # finished maps kept on the GUI side: going back shows them at once
ShownKey = tuple[str, str, object, str, bool]


def _peek_classes(profile_path: Path) -> tuple[str, ...]:
    """The class list of a profile without validating it (that needs torchvision).

    Only used to read ground truth from folder names while the model loads; the loaded
    profile's classes replace it.
    """
    try:
        with profile_path.open("rb") as fh:
            classes = tomllib.load(fh).get("classes", [])
    except (OSError, tomllib.TOMLDecodeError):
        return ()
    return tuple(c for c in classes if isinstance(c, str))


class MainWindow(QMainWindow):
    """Grad-CAM Inspector's window. Call ``start()`` once it is shown.

    The ``sig_*`` signals repeat the worker's results on the GUI thread, after the window has
    handled them (what tests and scripts wait for).
    """

    sig_model_ready = Signal(object)  # ModelLoaded
    sig_result = Signal(object)  # Explained, any job
    sig_error = Signal(object)  # JobFailed
    sig_export_progress = Signal(object)  # ExportProgress
    sig_export_finished = Signal(object)  # ExportFinished
    sig_worker_idle = Signal()

    def __init__(
        self,
        settings: QSettings | None = None,
        folder: Path | None = None,
        profile: Path | None = None,
        device: str | None = None,
        prefetch: bool = True,
        log_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.log_path = log_path  # for the About box; None: not logging to a file
        self.cuda_available: bool | None = None  # None until the worker has imported torch
        self.settings = settings if settings is not None else QSettings()
        self._cli_folder, self._cli_profile, self._cli_device = folder, profile, device
        self.state = ViewState()
        self.threads = WorkerThread(prefetch)
        self.worker = self.threads.worker
        self.view = OverlayView()
        self.setCentralWidget(self.view)
        self.images = ImagesDock(self)
        self.model_dock = ModelDock(self)
        self.prediction = PredictionPanel(self)
        self.summary = SummaryDock(self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.images)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.prediction)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.model_dock)
        self.tabifyDockWidget(self.model_dock, self.summary)
        # visibilityChanged, not isVisible(): a tabbed dock behind another tab still reports
        # isVisible(). Shown until the first signal says otherwise, so nothing is missed.
        self._summary_stale = True
        self._summary_shown = True
        self.summary.visibilityChanged.connect(self._summary_visibility)
        self.model_dock.raise_()
        self.resize(1400, 860)
        self.resizeDocks([self.images, self.prediction], [480, 400], Qt.Orientation.Horizontal)
        self.resizeDocks([self.prediction, self.model_dock], [330, 480], Qt.Orientation.Vertical)
        self.profile = None
        self.profile_path: Path | None = None
        self.folder: Path | None = None
        self.device = "auto"
        self.classes: tuple[str, ...] = ()
        self.model_ready = False
        self.last_explained: Explained | None = None
        self._job_id = 0
        self._requested: dict[int, ShownKey] = {}
        self._shown_cache: OrderedDict[ShownKey, Explained] = OrderedDict()
        self._export_id: int | None = None
        self._pending_image: str | None = None
        self._closing = False
        self._use_profile_defaults = True
        self._last_load: LoadModel | None = None
        self.session: Session | None = None
        self._weights_sha256 = ""
        self._refused_session: Path | None = None  # told once; later retries stay quiet
        # A session file the user chose, for this (folder, profile) only.
        self._chosen_session: tuple[Path, Path | None, Path] | None = None
        self._build_toolbar()
        self._build_status_bar()
        self._build_menus()
        self._connect()
        self._sync_widgets(frozenset(ViewOptions.__dataclass_fields__))

    # -- construction ---------------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        bar = QToolBar("View")
        bar.setObjectName("ViewToolbar")
        self.addToolBar(bar)
        self.mode = QComboBox()
        for mode in MODES:
            self.mode.addItem(MODE_LABELS[mode], mode)
        self.colormap = QComboBox()
        self.colormap.addItems(list(Colormap))
        self.blend = QComboBox()
        self.blend.addItem("Weighted", "weighted")
        self.blend.addItem("Additive (Keras)", "additive")
        self.blend.setToolTip(
            "Weighted: (1 - opacity) * image + opacity * heatmap.\n"
            "Additive: image + opacity * heatmap, clipped (the Keras Grad-CAM example)."
        )
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(110)
        self.opacity.setToolTip("Heatmap opacity (blends live while you drag)")
        self.opacity_label = QLabel()
        self.opacity_label.setMinimumWidth(36)
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold.setFixedWidth(90)
        self.threshold.setToolTip("Hide heat below this CAM value")
        self.threshold_label = QLabel()
        self.threshold_label.setMinimumWidth(36)
        self.blur = QCheckBox("Blur")
        self.blur.setToolTip("Smooth the map with a Gaussian blur (sigma 4 px)")
        self.boxes = QCheckBox("GT boxes")
        self.boxes.setToolTip("Draw the ground-truth boxes from the annotation files")
        self.device_combo = QComboBox()
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.addItem("CUDA", "cuda")
        self._set_cuda_available(None)
        for label, widget in (
            ("View ", self.mode),
            (" Colormap ", self.colormap),
            (" Blend ", self.blend),
            (" Opacity ", self.opacity),
            (None, self.opacity_label),
            (" Threshold ", self.threshold),
            (None, self.threshold_label),
            (None, self.blur),
            (None, self.boxes),
            (" Device ", self.device_combo),
        ):
            if label:
                bar.addWidget(QLabel(label))
            bar.addWidget(widget)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.hover_label = QLabel()
        self.hover_label.setMinimumWidth(190)
        self.device_label = QLabel("device: —")
        self.time_label = QLabel("CAM: — ms")
        self.export_bar = QProgressBar()
        self.export_bar.setMaximumWidth(260)
        self.export_bar.setFormat("%v/%m")
        self.export_cancel = QPushButton("Cancel export")
        # A slot of the window, not of the worker: a queued call would wait for the export.
        self.export_cancel.clicked.connect(self.cancel_export)
        for widget in (self.export_bar, self.export_cancel):
            widget.hide()
            status.addPermanentWidget(widget)
        self.session_label = QLabel("no session")
        for widget in (self.hover_label, self.session_label, self.device_label, self.time_label):
            status.addPermanentWidget(widget)

    def _action(self, text: str, slot, shortcut: str | QKeySequence | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even with the menu bar hidden
        return action

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file = menu.addMenu("&File")
        file.addAction(self._action("Open folder…", self.open_folder_dialog, "Ctrl+O"))
        file.addAction(self._action("Open profile…", self.open_profile_dialog, "Ctrl+P"))
        file.addAction(self._action("Open checkpoint…", self.open_checkpoint_dialog))
        self.recent_menu = file.addMenu("Recent profiles")
        file.addAction(self._action("Session file…", self.choose_session_file))
        file.addSeparator()
        file.addAction(self._action("Export current image…", self.export_current, "Ctrl+E"))
        file.addAction(self._action("Export folder…", self.export_folder, "Ctrl+Shift+E"))
        file.addAction(self._action("Export report…", self.export_report))
        file.addSeparator()
        file.addAction(self._action("Quit", self.close, QKeySequence.StandardKey.Quit))
        view = menu.addMenu("&View")
        view.addAction(self._action("Fit to window", self.view.fit, "Ctrl+F"))
        view.addAction(self._action("Actual size (1:1)", self.view.actual_size, "Ctrl+0"))
        view.addSeparator()
        for dock in (self.images, self.prediction, self.model_dock, self.summary):
            view.addAction(dock.toggleViewAction())
        go = menu.addMenu("&Go")
        go.addAction(self._action("Next image (D, Right)", lambda: self.images.step(1), "D"))
        go.addAction(self._action("Previous image (A, Left)", lambda: self.images.step(-1), "A"))
        go.addAction(self._action("First image", self.images.first, "Home"))
        go.addAction(self._action("Last image", self.images.last, "End"))
        self._action("Next image", lambda: self.images.step(1), "Right")
        self._action("Previous image", lambda: self.images.step(-1), "Left")
        go.addSeparator()
        self.auto_advance = QAction("Auto-advance after a verdict", self)
        self.auto_advance.setCheckable(True)
        self.auto_advance.setChecked(str(self.settings.value("autoAdvance", "true")) == "true")
        self.auto_advance.toggled.connect(
            lambda on: self.settings.setValue("autoAdvance", str(on).lower())
        )
        go.addAction(self.auto_advance)
        review = menu.addMenu("&Review")
        for code in (1, 2, 3, 4):
            review.addAction(
                self._action(
                    f"Verdict {code}", lambda _=False, c=code: self.set_verdict(c), str(code)
                )
            )
        review.addAction(self._action("Note…", self.edit_note, "N"))
        review.addAction(self._action("Undo verdict or note", self.undo, "Ctrl+Z"))
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action(f"About {APP_NAME}", self.show_about))
        self._refresh_recent_menu()

    def _connect(self) -> None:
        self.state.subscribe(self._options_changed)
        self.mode.currentIndexChanged.connect(
            lambda i: self.state.update(mode=self.mode.itemData(i))
        )
        self.colormap.currentTextChanged.connect(lambda t: self.state.update(colormap=t))
        self.blend.currentIndexChanged.connect(
            lambda i: self.state.update(blend=self.blend.itemData(i))
        )
        self.opacity.valueChanged.connect(lambda v: self.state.update(alpha=v / 100))
        self.threshold.valueChanged.connect(lambda v: self.state.update(threshold=v / 100))
        self.blur.toggled.connect(lambda on: self.state.update(blur=on))
        self.boxes.toggled.connect(lambda on: self.state.update(show_boxes=on))
        self.device_combo.currentIndexChanged.connect(self._device_chosen)
        self.prediction.sig_method_chosen.connect(lambda m: self.state.update(method=m))
        self.prediction.sig_target_chosen.connect(lambda t: self.state.update(target=t))
        self.prediction.sig_verdict_chosen.connect(self.set_verdict)
        self.prediction.sig_corrected_chosen.connect(self.set_corrected)
        self.model_dock.sig_layer_clicked.connect(lambda name: self.state.update(layer=name))
        self.model_dock.sig_open_profile.connect(self.open_profile_dialog)
        self.model_dock.sig_open_checkpoint.connect(self.open_checkpoint_dialog)
        self.images.sig_selected.connect(self._image_selected)
        self.view.sig_hover.connect(self.hover_label.setText)
        self.worker.sig_model_loaded.connect(self._model_loaded)
        self.worker.sig_explained.connect(self._explained)
        self.worker.sig_failed.connect(self._failed)
        self.worker.sig_export_progress.connect(self._export_progress)
        self.worker.sig_export_finished.connect(self._export_finished)
        self.worker.sig_cam_progress.connect(self._cam_progress)
        self.worker.sig_predicted.connect(self._predicted)
        self.worker.sig_idle.connect(self.sig_worker_idle)
        # A bound method, not a lambda: the worker emits from its thread and only a slot of this
        # window is queued to the GUI thread (a lambda would run on the worker and crash Qt).
        self.worker.sig_notice.connect(self._notice)

    # -- start and settings ---------------------------------------------------------------------
    def start(self) -> None:
        """Restore the last session (or the demo) and start loading the model in the worker."""
        saved = self._restore_settings()
        profile = self._cli_profile or saved.get("profile") or demo_profile_path()
        if not self._cli_profile and not Path(profile).is_file():
            self._tell(
                "Profile not found",
                f"The profile {profile} no longer exists; loading the demo model instead.",
            )
            profile = demo_profile_path()
        # A saved "cuda" may meet a machine without one: "auto" still picks it when present.
        device = self._cli_device or saved.get("device", "auto").replace("cuda", "auto")
        folder = self._cli_folder or saved.get("folder") or demo_images_dir()
        if not Path(folder).is_dir():
            self._tell(
                "Folder not found",
                f"The folder {folder} no longer exists; showing the demo images instead.",
            )
            folder = demo_images_dir()
        self._pending_image = saved.get("image") if not self._cli_folder else None
        self._use_profile_defaults = not saved
        self.profile_path = Path(profile)
        self.open_folder(Path(folder), _peek_classes(self.profile_path))
        # Queued to the worker's thread ahead of the load: torch's shared libraries load there
        # with the GIL released, so the import that follows no longer freezes this window.
        QTimer.singleShot(0, self.worker, preload_torch_libraries)
        self.load_model(LoadModel(profile_path=self.profile_path, device=device))

    def _restore_settings(self) -> dict[str, str]:
        s = self.settings
        if s.value("version", 0, int) != SETTINGS_VERSION:
            return {}
        if geometry := s.value("geometry"):
            self.restoreGeometry(geometry)
        if layout := s.value("windowState"):
            self.restoreState(layout)
        options = {}
        for key, kind in (("mode", str), ("colormap", str), ("method", str), ("layer", str)):
            if (value := s.value(key)) is not None:
                options[key] = kind(value)
        for key in ("alpha", "threshold"):
            if (value := s.value(key)) is not None:
                options[key] = float(value)
        for key in ("blur", "show_boxes"):
            if (value := s.value(key)) is not None:
                options[key] = str(value).lower() == "true"
        for key, value in options.items():
            try:
                self.state.update(**{key: value})
            except InspectorError as exc:
                log.warning("ignoring saved setting %s: %s", key, exc)
        return {
            key: str(s.value(key))
            for key in ("profile", "folder", "image", "device")
            if s.value(key)
        }

    def save_settings(self) -> None:
        s = self.settings
        o = self.state.options
        s.setValue("version", SETTINGS_VERSION)
        s.setValue("geometry", self.saveGeometry())
        s.setValue("windowState", self.saveState())
        for key in ("mode", "colormap", "method", "layer", "alpha", "threshold"):
            s.setValue(key, getattr(o, key))
        s.setValue("blur", str(o.blur).lower())
        s.setValue("show_boxes", str(o.show_boxes).lower())
        s.setValue("device", self.device)
        if self.profile_path is not None:
            s.setValue("profile", str(self.profile_path))
        if self.folder is not None:
            s.setValue("folder", str(self.folder))
        if (record := self.images.current_record()) is not None:
            s.setValue("image", str(record.path))
        s.sync()

    def _recent_profiles(self) -> list[str]:
        value = self.settings.value("recentProfiles", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if p]

    def _remember_profile(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self._recent_profiles() if p != str(path)]
        self.settings.setValue("recentProfiles", recent[:MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self._recent_profiles()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_profile(Path(p)))
        self.recent_menu.setEnabled(bool(recent))

    # -- model ----------------------------------------------------------------------------------
    def load_model(self, job: LoadModel) -> None:
        self.model_ready = False
        self.device = job.device
        self._last_load = job
        self.model_dock.set_loading("Loading model… (importing torch in the background)")
        self.statusBar().showMessage("Loading the model in the background…")
        self.view.show_waiting("Loading the model…")
        self.worker.submit(job)

    def open_profile(self, path: Path) -> None:
        self.profile_path = path
        self.load_model(LoadModel(profile_path=path, device=self.device))

    def _model_loaded(self, loaded: ModelLoaded) -> None:
        if self._closing:
            return  # queued before the worker stopped; the window is going away
        self.profile = loaded.profile
        self._weights_sha256 = loaded.weights_sha256
        if loaded.profile.source is not None:
            self.profile_path = loaded.profile.source
            if loaded.profile.source != demo_profile_path():
                self._remember_profile(loaded.profile.source)
        self._set_cuda_available(loaded.cuda_available)
        self.cuda_available = loaded.cuda_available
        log.info(
            "model '%s' loaded on %s in %.1f s (torch %s, CUDA %s)",
            loaded.profile.name,
            loaded.device,
            loaded.seconds,
            getattr(sys.modules.get("torch"), "__version__", "?"),
            "available" if loaded.cuda_available else "not available",
        )
        self.device = "cuda" if loaded.device.startswith("cuda") else "cpu"
        self._select_device(loaded.device)
        self.device_label.setText(f"device: {loaded.device}")
        pre = loaded.profile.preprocess
        self.model_dock.set_model(
            loaded.profile.name,
            f"{loaded.profile.architecture}, {len(loaded.classes)} classes, "
            f"input {pre.size[1]}×{pre.size[0]} — loaded in {loaded.seconds:.1f} s",
            loaded.inventory,
        )
        spatial = {i.name for i in loaded.inventory.layers if i.spatial}
        layer = self.state.options.layer
        if layer not in spatial:
            layer = loaded.profile.cam.layer or loaded.inventory.default_layer or ""
        changes: dict[str, object] = {"layer": layer, "target": "pred"}
        if self._use_profile_defaults:  # nothing restored: the profile says how to start
            cam = loaded.profile.cam
            changes |= {"method": cam.method, "colormap": cam.colormap, "alpha": cam.alpha}
            self._use_profile_defaults = False
        # The blend belongs to the model (a Keras-style profile asks for additive): always its own.
        changes["blend"] = loaded.profile.cam.blend
        if loaded.classes != self.classes and self.folder is not None:
            self.classes = loaded.classes
            self.open_folder(self.folder, loaded.classes)
        self.classes = loaded.classes
        self.prediction.set_classes(loaded.classes)
        self.images.model.clear_results()
        self._shown_cache.clear()
        self.model_ready = True
        changed = self.state.update(**changes)  # asks for the current image's CAM if needed
        self.statusBar().showMessage(f"Model ready on {loaded.device}", 5000)
        if self.images.current_record() is None:
            if not (self._pending_image and self.images.select_record(self._pending_image)):
                self.images.first()
            self._pending_image = None
        elif not changed & CAM_FIELDS:
            self.request_explain()  # same options, new model: the old map is stale
        self._open_session()
        self._update_title()
        self.sig_model_ready.emit(loaded)

    def _set_cuda_available(self, available: bool | None) -> None:
        model = self.device_combo.model()
        assert isinstance(model, QStandardItemModel)
        item = model.item(1)
        item.setEnabled(bool(available))
        if available is None:
            item.setToolTip("Checking for CUDA…")
        elif not available:
            item.setToolTip("CUDA is not available on this machine (no GPU or a CPU-only torch)")
        else:
            item.setToolTip("Run the model on the GPU")
        self.device_combo.setToolTip(item.toolTip() if not available else "Model device")

    def _select_device(self, device: str) -> None:
        with QSignalBlocker(self.device_combo):
            self.device_combo.setCurrentIndex(1 if device.startswith("cuda") else 0)

    def _device_chosen(self, index: int) -> None:
        device = self.device_combo.itemData(index)
        if device != self.device and self._last_load is not None:
            self.load_model(dataclasses.replace(self._last_load, device=device))

    # -- images ---------------------------------------------------------------------------------
    def open_folder(self, folder: Path, classes: tuple[str, ...] | None = None) -> None:
        try:
            records = scan_images(folder, classes if classes is not None else self.classes)
        except InspectorError as exc:
            self._tell("Cannot open folder", str(exc))
            return
        self.folder = folder
        self._update_title()
        self.images.set_records(records, str(folder))
        if not records:
            self.view.show_error(f"No images found in {folder}")
        elif self.model_ready:
            self.images.first()
        self._open_session()

    def _image_selected(self, _record: ImageRecord) -> None:
        self._show_verdict()
        self.request_explain()

    def request_explain(self) -> None:
        record = self.images.current_record()
        if record is None or not self.model_ready or self._closing:
            return
        o = self.state.options
        self._job_id += 1
        key: ShownKey = (str(record.path), o.layer, o.target, o.method, o.blur)
        cached = self._shown_cache.get(key)
        if cached is not None:
            self.worker.supersede(self._job_id)  # a map still computing is not wanted now
            self._shown_cache.move_to_end(key)
            self._show(cached)
            self.sig_result.emit(cached)
            return
        self._requested = {self._job_id: key}
        self.worker.submit(
            Explain(
                self._job_id,
                record,
                o.layer,
                o.target,
                o.method,
                o.blur,
                self.images.neighbours(PREFETCH_COUNT),
            )
        )
        self.statusBar().showMessage(f"Computing {o.method} for {record.rel_path.as_posix()}…")

    def _explained(self, done: Explained) -> None:
        if self._closing:
            return  # queued before the worker stopped; the window is going away
        result = done.result
        pred = result.predicted
        hit = energy = None
        if result.target_index == pred.index:  # localisation scores are for the prediction
            hit = pointing_hit(result.cam, done.boxes)
            energy = energy_in_box(result.cam, done.boxes)
            self._record_result(done.record, pred.name, pred.probability, hit, energy)
        self.images.model.set_result(
            done.record, RowResult(pred.name, pred.probability, pointing_hit=hit)
        )
        key = self._requested.pop(done.job_id, None)
        if key is not None:
            self._shown_cache[key] = done
            while len(self._shown_cache) > SHOWN_CACHE_SIZE:
                self._shown_cache.popitem(last=False)
        if done.job_id == self._job_id:
            self._show(done)
        self.sig_result.emit(done)

    def _show(self, done: Explained) -> None:
        result = done.result
        self.last_explained = done
        self.view.set_content(
            done.image, result.cam, done.boxes, self.state.options, map_title(result)
        )
        self.prediction.show_result(result, done.record.ground_truth, done.boxes)
        source = "cached pass" if not done.model_pass else "model pass"
        self.time_label.setText(f"CAM: {done.milliseconds:.0f} ms ({source})")
        self.statusBar().showMessage(
            f"{done.record.rel_path.as_posix()}: {result.method} at {result.layer}", 5000
        )

    def _predicted(self, record: ImageRecord, name: str, probability: float) -> None:
        self.images.model.set_result(record, RowResult(name, probability))

    def _failed(self, failed: JobFailed) -> None:
        if self._closing:
            return  # queued before the worker stopped; the window is going away
        self._report_failure(failed)
        self.sig_error.emit(failed)

    def _report_failure(self, failed: JobFailed) -> None:
        if failed.kind == "model":
            self.model_dock.set_loading("No model loaded")
            self.view.show_error(f"Cannot load the model:\n{failed.message}")
            self._tell("Cannot load the model", failed.message)
            return
        if failed.kind == "export":
            self._export_done_ui()
            self._tell("Folder export failed", failed.message)
            return
        if failed.record is not None:
            self.images.model.set_result(failed.record, RowResult("error", None, failed.message))
        if failed.job_id == self._job_id:
            self.last_explained = None
            self.view.show_error(failed.message)
            self.prediction.clear("")
            self.statusBar().showMessage(failed.message, 10000)

    def _cam_progress(self, done: int, total: int) -> None:
        self.statusBar().showMessage(f"Score-CAM: {done}/{total} masked passes…")

    def _tell(self, title: str, message: str) -> None:
        """A non-blocking dialog for things the user must act on; the status bar repeats it."""
        self.statusBar().showMessage(message, 15000)
        if self._closing:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- session --------------------------------------------------------------------------------
    def session_path(self) -> Path | None:
        """Where this folder and profile's session lives: the chosen file, else the default."""
        if self.folder is None:
            return None
        if self._chosen_session is not None:
            folder, profile, path = self._chosen_session
            if (folder, profile) == (self.folder, self.profile_path):
                return path
        default = default_session_path(self.folder, self.profile_path).absolute()
        remembered = self.settings.value(self._session_setting(default))
        if remembered and Path(str(remembered)).is_file():  # chosen earlier with Session file…
            return Path(str(remembered))
        return default

    @staticmethod
    def _session_setting(default: Path) -> str:
        """The settings key remembering a chosen session file for one folder and profile."""
        return f"session_files/{default.stem}"  # the stem already encodes folder and profile

    def _open_session(self) -> None:
        """Open or resume the session of this folder and profile (SQLite only, no torch)."""
        path = self.session_path()
        if path is None or self.folder is None or not self.model_ready:
            return
        if self.session is not None and self.session.path == path:
            self._add_session_images(self.session)
            return
        self._close_session()
        try:
            session = self._open_session_at(self.folder, path)
        except InspectorError as exc:
            if path != self._refused_session:
                self._tell("Verdicts will not be recorded", str(exc))
            self._refused_session = path
            self.session_label.setToolTip(str(exc))
            self._session_changed()
            return
        self._adopt_session(session)

    def _open_session_at(self, folder: Path, path: Path) -> Session:
        o = self.state.options
        return Session.open(
            path, folder, self.profile_path, self._weights_sha256, o.layer, o.method
        )

    def _adopt_session(self, session: Session) -> None:
        self._refused_session = None
        self.session = session
        self._add_session_images(session)
        if session.warnings:
            self._tell("The model changed since this session began", "\n".join(session.warnings))
        self._session_changed()

    def choose_session_file(self) -> None:
        """Show where the session lives and let the user pick another file (new or existing)."""
        current = self.session_path()
        path, _ = QFileDialog.getSaveFileName(
            self,
            f"Session file (now {current})" if current else "Session file",
            str(current or Path.home()),
            "Inspection sessions (*.sqlite);;All files (*)",
            options=QFileDialog.Option.DontConfirmOverwrite,  # an existing session is resumed
        )
        if path:
            self.use_session_file(Path(path))

    def use_session_file(self, path: Path) -> bool:
        """Record this folder and profile's verdicts in path, creating or resuming it there.

        A file that cannot be used is left as it was and the current session stays open.
        """
        if self.folder is None or not self.model_ready:
            self._tell("No session yet", "Open a folder and wait for the model to load first.")
            return False
        path = Path(path).expanduser().absolute()
        if self.session is not None and self.session.path == path:
            return True
        try:
            session = self._open_session_at(self.folder, path)
        except InspectorError as exc:
            kept = (
                f"The session in {self.session.path} stays open."
                if self.session is not None
                else "Verdicts are still not recorded."
            )
            self._tell("Cannot use this session file", f"{exc}\n\n{kept}")
            return False
        self._chosen_session = (self.folder, self.profile_path, path)
        default = default_session_path(self.folder, self.profile_path).absolute()
        self.settings.setValue(self._session_setting(default), str(path))
        self._close_session()
        self._adopt_session(session)
        self.statusBar().showMessage(f"Session file: {path}", 8000)
        return True

    def _add_session_images(self, session: Session) -> None:
        try:
            session.add_images(r.rel_path.as_posix() for r in self.images.model.records)
        except InspectorError as exc:
            self.statusBar().showMessage(str(exc), 10000)
        self._update_progress()

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _session_changed(self) -> None:
        session = self.session
        self.prediction.set_verdict_labels(session.labels if session else None)
        verdicts = session.verdicts() if session else {}
        self.images.model.set_verdicts(
            {rel: v.code for rel, v in verdicts.items() if v.code is not None}
        )
        self._update_progress()
        self._show_verdict()

    def _update_progress(self) -> None:
        # Rebuilding the summary plots costs 30-50 ms; a hidden tab is rebuilt when it is shown.
        self._summary_stale = True
        if self._summary_shown:
            self._refresh_summary()
        if self.session is None:
            self.session_label.setText("no session")
            return
        reviewed, total = self.session.progress()
        self.session_label.setText(f"reviewed {reviewed} / {total}")
        self.session_label.setToolTip(f"Session file: {self.session.path}")

    def _refresh_summary(self) -> None:
        self._summary_stale = False
        if self.session is None:
            self.summary.show_counts([], None)
            self.summary.show_records([])
            return
        self.summary.show_counts(self.session.class_counts(), self.session.labels)
        self.summary.show_records(self.session.records())

    def _summary_visibility(self, visible: bool) -> None:
        self._summary_shown = visible
        if visible and self._summary_stale:
            self._refresh_summary()

    def _current_rel_path(self) -> str | None:
        record = self.images.current_record()
        return None if record is None else record.rel_path.as_posix()

    def _show_verdict(self) -> None:
        rel = self._current_rel_path()
        verdict = self.session.verdict(rel) if self.session and rel else None
        if verdict is None:
            self.prediction.show_verdict(None, None)
        else:
            self.prediction.show_verdict(verdict.code, verdict.note, verdict.corrected)

    def _record_result(
        self,
        record: ImageRecord,
        predicted: str,
        confidence: float,
        hit: bool | None,
        energy: float | None,
    ) -> None:
        if self.session is None:
            return
        try:
            self.session.record_result(
                record.rel_path.as_posix(), predicted, confidence, record.ground_truth, hit, energy
            )
        except InspectorError as exc:
            self.statusBar().showMessage(str(exc), 10000)
            return
        self._update_progress()  # the summary groups by the prediction just recorded

    def set_verdict(self, code: int) -> None:
        """Record a verdict for the current image (committed at once), then move on."""
        rel = self._current_rel_path()
        if self.session is None or rel is None:
            self.statusBar().showMessage("No session: the verdict is not recorded", 5000)
            self._show_verdict()
            return
        following = self.images.neighbours(1)  # before the filter may hide this row
        current = self.session.verdict(rel)
        # A correction stays with "wrong class" or "unsure"; "right class" has none.
        corrected = current.corrected if current is not None and code in (3, 4) else None
        try:
            self.session.set_verdict(rel, code, corrected=corrected)
        except InspectorError as exc:
            self._tell("Verdict not recorded", str(exc))
            return
        self.images.model.set_verdict(rel, code)
        self._update_progress()
        self.statusBar().showMessage(f"{rel}: verdict {code} recorded", 5000)
        if self.auto_advance.isChecked() and following:
            self.images.select_record(str(following[0].path))
        self._show_verdict()

    def set_corrected(self, corrected: str | None) -> None:
        """Store (or clear, with None) a corrected class with the current image's verdict."""
        rel = self._current_rel_path()
        session = self.session
        current = session.verdict(rel) if session is not None and rel is not None else None
        if session is None or rel is None or current is None or current.code is None:
            self.statusBar().showMessage("Give a verdict (keys 1-4) before a corrected class", 5000)
            self._show_verdict()
            return
        try:
            # The engine stores the corrected class with a verdict: re-record the current code.
            session.set_verdict(rel, current.code, corrected=corrected)
        except InspectorError as exc:
            self._tell("Corrected class not recorded", str(exc))
        else:
            self.statusBar().showMessage(f"{rel}: corrected class {corrected or 'cleared'}", 5000)
        self._show_verdict()

    def undo(self) -> None:
        """Revert the latest verdict or note of this sitting and show that image."""
        if self.session is None:
            return
        try:
            change = self.session.undo()
        except InspectorError as exc:
            self._tell("Cannot undo", str(exc))
            return
        if change is None:
            self.statusBar().showMessage("Nothing to undo in this sitting", 5000)
            return
        self.images.model.set_verdict(change.rel_path, change.code)
        self._update_progress()
        self.images.select_rel_path(change.rel_path)
        self._show_verdict()
        self.statusBar().showMessage(f"Undone: {change.rel_path}", 5000)

    def edit_note(self) -> None:
        rel = self._current_rel_path()
        if self.session is None or rel is None:
            self.statusBar().showMessage("No session: notes are not recorded", 5000)
            return
        current = self.session.verdict(rel)
        text, ok = QInputDialog.getMultiLineText(
            self, "Note", f"Note for {rel}:", (current.note or "") if current else ""
        )
        if ok:
            self.set_note(text)

    def set_note(self, text: str) -> None:
        """Set (or clear, with blank text) the current image's note."""
        rel = self._current_rel_path()
        if self.session is None or rel is None:
            return
        try:
            self.session.set_note(rel, text)
        except InspectorError as exc:
            self._tell("Note not recorded", str(exc))
            return
        self._show_verdict()

    def export_report(self, output: Path | None = None) -> ReportFiles | None:
        """report.csv and report.html of the session, with overlays of the maps still cached."""
        if self.session is None:
            self._tell("No session", "There is no open session to report on.")
            return None
        if output is None:
            chosen = QFileDialog.getExistingDirectory(self, "Export report to", "")
            if not chosen:
                return None
            output = Path(chosen)
        try:
            files = write_report(self.session, output, overlay_for=self._overlay_for)
        except InspectorError as exc:
            self._tell("Report failed", str(exc))
            return None
        self.statusBar().showMessage(f"Wrote {files.csv} and {files.html}", 15000)
        return files

    def _notice(self, text: str) -> None:
        """A remark on the model from the worker (how loading or its output was read)."""
        log.info("model note: %s", text)
        self.statusBar().showMessage(text, 15000)

    def _overlay_for(self, rel_path: str) -> np.ndarray | None:
        """The overlay of a cached map of this image, as shown now; None when none is cached."""
        o = self.state.options
        candidates = [self.last_explained, *reversed(self._shown_cache.values())]
        for done in candidates:
            if done is not None and done.record.rel_path.as_posix() == rel_path:
                boxes = done.boxes if o.show_boxes else ()
                return render_overlay(done.image, done.result.cam, o.style, boxes)
        return None

    # -- options --------------------------------------------------------------------------------
    def _options_changed(self, names: frozenset[str]) -> None:
        self._sync_widgets(names)
        if names & CAM_FIELDS:
            self.request_explain()
        else:
            self.view.refresh(self.state.options)

    def _sync_widgets(self, names: frozenset[str]) -> None:
        """Set each widget from the state without it emitting back."""
        o = self.state.options
        widgets = {
            "mode": (self.mode, lambda: self.mode.setCurrentIndex(self.mode.findData(o.mode))),
            "colormap": (self.colormap, lambda: self.colormap.setCurrentText(o.colormap)),
            "blend": (self.blend, lambda: self.blend.setCurrentIndex(self.blend.findData(o.blend))),
            "alpha": (self.opacity, lambda: self.opacity.setValue(round(100 * o.alpha))),
            "threshold": (
                self.threshold,
                lambda: self.threshold.setValue(round(100 * o.threshold)),
            ),
            "blur": (self.blur, lambda: self.blur.setChecked(o.blur)),
            "show_boxes": (self.boxes, lambda: self.boxes.setChecked(o.show_boxes)),
            "method": (self.prediction, lambda: self.prediction.set_method(o.method)),
            "layer": (self.model_dock, lambda: self.model_dock.set_current(o.layer)),
        }
        for name in names:
            if name in widgets:
                widget, apply = widgets[name]
                with QSignalBlocker(widget):
                    apply()
        self.opacity_label.setText(f"{o.alpha:.0%}")
        self.threshold_label.setText(f"{o.threshold:.0%}")

    # -- dialogs --------------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        start = str(self.folder or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open image folder", start)
        if folder:
            self.open_folder(Path(folder))

    def open_profile_dialog(self) -> None:
        start = str(self.profile_path.parent if self.profile_path else Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model profile", start, "Model profiles (*.toml)"
        )
        if path:
            self.open_profile(Path(path))

    def open_checkpoint_dialog(self) -> None:
        dialog = CheckpointDialog(self, self.classes)
        if dialog.exec():
            self.profile_path = None
            self.load_model(LoadModel(checkpoint=dialog.spec(), device=self.device))

    # -- export ---------------------------------------------------------------------------------
    def export_current(self, folder: Path | None = None) -> list[Path]:
        """Heatmap, overlay and three-panel PNGs and the raw map of the shown image."""
        done = self.last_explained
        if done is None:
            self.statusBar().showMessage("Nothing to export yet: no map is shown", 5000)
            return []
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(self, "Export current image to", "")
            if not chosen:
                return []
            folder = Path(chosen)
        o = self.state.options
        result = done.result
        boxes = done.boxes if o.show_boxes else ()
        stem = folder / f"{done.record.path.stem}_{result.method}_{safe_layer_name(result.layer)}"
        try:
            written = write_map_files(
                stem, done.image, result, o.style, boxes, MapFiles(panels=True, raw=True)
            )
        except InspectorError as exc:
            self._tell("Export failed", str(exc))
            return []
        self.statusBar().showMessage(f"Wrote {len(written)} files to {folder}", 8000)
        return written

    def export_folder(self, output: Path | None = None, batch_size: int = 4) -> int | None:
        """Start the batch export of the listed (filtered) images; returns its job id."""
        if not self.model_ready or self._export_id is not None:
            self.statusBar().showMessage("An export is running or the model is not ready", 5000)
            return None
        if output is None:
            chosen = QFileDialog.getExistingDirectory(self, "Export folder results to", "")
            if not chosen:
                return None
            output = Path(chosen)
        try:
            output = ensure_output_dir(output, self.folder)
        except InspectorError as exc:
            self._tell("Cannot export there", str(exc))
            return None
        records = tuple(self.images.visible_records())
        o = self.state.options
        options = BatchOptions(
            output=output,
            method=o.method,
            layer=o.layer,
            target=str(o.target),
            style=o.style,
            batch_size=batch_size,
            save_raw=True,
            panels=True,
            draw_boxes=o.show_boxes,
        )
        self._job_id += 1
        self._export_id = self._job_id
        self.worker.submit(ExportFolder(self._export_id, records, options))
        self.export_bar.setRange(0, len(records))
        self.export_bar.setValue(0)
        self.export_bar.show()
        self.export_cancel.setEnabled(True)
        self.export_cancel.show()
        self.statusBar().showMessage(f"Exporting {len(records)} images to {output}…")
        return self._export_id

    def cancel_export(self) -> None:
        """Stop the folder export after the chunk in progress; what is written stays."""
        self.worker.cancel_export()
        self.export_cancel.setEnabled(False)
        self.statusBar().showMessage("Cancelling the export…")

    def _export_progress(self, progress: ExportProgress) -> None:
        if self._closing:
            return  # queued before the worker stopped; the window is going away
        self.export_bar.setValue(progress.done)
        rate = progress.done / progress.seconds if progress.seconds > 0 else 0.0
        eta = (progress.total - progress.done) / rate if rate > 0 else 0.0
        failed = f", {progress.failed} failed" if progress.failed else ""
        self.export_bar.setToolTip(f"{rate:.1f} images/s")
        self.statusBar().showMessage(
            f"Exporting: {progress.done}/{progress.total}{failed}, ETA {eta:.0f} s"
        )
        self.sig_export_progress.emit(progress)

    def _export_finished(self, finished: ExportFinished) -> None:
        if self._closing:
            return  # queued before the worker stopped; the window is going away
        self._export_done_ui()
        s = finished.summary
        verb = "Export cancelled after" if s.cancelled else "Exported"
        self.statusBar().showMessage(
            f"{verb} {s.succeeded + s.failed}/{s.total} images "
            f"({s.failed} failed) in {s.seconds:.1f} s; see {s.csv_path}",
            15000,
        )
        self.sig_export_finished.emit(finished)

    def _export_done_ui(self) -> None:
        self._export_id = None
        self.export_bar.hide()
        self.export_cancel.hide()

    # -- title and about ------------------------------------------------------------------------
    def _update_title(self) -> None:
        """'<folder> — <profile> — Grad-CAM Inspector <version>'.

        The name comes last because Qt appends the application display name to a title that
        does not end with it.
        """
        parts = []
        if self.folder is not None:
            parts.append(self.folder.name or str(self.folder))
        if self.profile is not None:
            parts.append(self.profile.name)
        elif self.profile_path is not None:
            parts.append(self.profile_path.stem)
        parts.append(f"{APP_NAME} {__version__}")
        self.setWindowTitle(" — ".join(parts))

    def about_info(self) -> AboutInfo:
        """What Help > About shows now (versions from loaded modules only: no torch import)."""
        return gather(
            self.profile.name if self.profile is not None else None,
            self.profile_path,
            self.cuda_available,
            self.device,
            self.log_path,
        )

    def show_about(self) -> QMessageBox:
        return show_about(self, self.about_info())

    # -- closing --------------------------------------------------------------------------------
    def shutdown(self) -> bool:
        """Cancel what runs, stop the worker thread and wait for it; True when it ended."""
        self._closing = True
        self.images.thumbnails.close()
        return self.threads.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        try:
            self.save_settings()
        finally:
            # Whatever failed above (it reaches the crash log), the worker stops and the
            # session is checkpointed and unlocked: closing never loses or locks out work.
            self.hide()  # a model load cannot be interrupted: do not show a frozen window
            try:
                self.shutdown()
            finally:
                self._close_session()
                event.accept()
