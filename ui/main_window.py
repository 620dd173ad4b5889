"""The main window: docks and controllers wired together, the model's life cycle and the shown map.

The explain cycle lives in ui/explain.py, review sessions in ui/review.py, exports in
ui/exports.py, settings in ui/settings.py, the view toolbar in ui/view_toolbar.py and the menus in
ui/actions.py.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QSettings, QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine import __version__
from engine.dataset import ImageRecord, scan_images
from engine.errors import InspectorError
from engine.localization import energy_in_box, pointing_hit
from engine.map_files import map_title
from engine.profile import demo_profile_path, peek_classes
from engine.report import ReportFiles
from engine.session_records import SessionContext, VerdictView
from ui.about import APP_NAME, AboutInfo, gather, show_about, window_title
from ui.actions import ACTIONS, build_menus, fill_recent_menu
from ui.checkpoint_dialog import CheckpointDialog
from ui.explain import ExplainController
from ui.exports import ExportController
from ui.gallery import GalleryKey, GalleryView
from ui.images_dock import ImagesDock, RowResult
from ui.jobs import (
    BLUR_SIGMA,
    Explained,
    ExportReport,
    JobFailed,
    LoadModel,
    ModelLoaded,
    ReportWritten,
)
from ui.model_dock import ModelDock
from ui.notices import NoticeBanner, ShortcutsSheet
from ui.overlay_view import OverlayView
from ui.prediction_panel import PredictionPanel
from ui.preload import preload_torch_libraries
from ui.review import ReviewController, VerdictChange
from ui.settings import SavedPlaces, SettingsStore, fit_window_to_screen, start_places
from ui.summary_dock import SummaryDock
from ui.team import TeamTools
from ui.theme import SMALL
from ui.trust_dialog import TrustDialog
from ui.trust_dialogs import TrustTools
from ui.view_state import CAM_FIELDS, ViewMode, ViewOptions, ViewState, model_options
from ui.view_toolbar import DeviceChooser, ViewToolbar
from ui.worker import WorkerThread

if TYPE_CHECKING:  # engine.cam imports torch: the window only names its result type
    import numpy as np

    from engine.cam import CamResult

log = logging.getLogger(__name__)

PREFETCH_COUNT = 2  # the next images the worker computes while idle
# The most of the window's width the list and the right-hand panels take, and of its height
# the prediction panel takes: the overlay keeps the largest area on any screen.
LIST_SHARE, PANEL_SHARE = 0.34, 0.26
# The prediction panel grows by about this when a result fills its wrapped lines.
RESULT_LINES_HEIGHT = 60
OPACITY_STEP = 0.1  # [ and ] change the heatmap's opacity by this
MODEL_DOCK_MIN_HEIGHT = 260  # below this the layer table shows too few rows: tab it instead


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
    sig_report_written = Signal(object)  # ReportFiles
    sig_worker_idle = Signal()

    def __init__(
        self,
        settings: QSettings | None = None,
        folder: Path | None = None,
        profile: Path | None = None,
        device: str | None = None,
        prefetch: bool = True,
        log_path: Path | None = None,
        session: str | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.log_path = log_path  # for the About box; None: not logging to a file
        self.cuda_available: bool | None = None  # None until the worker has imported torch
        self.settings = settings if settings is not None else QSettings()
        self.stored = SettingsStore(self.settings)
        self._asked = SavedPlaces(  # the command line's places, ahead of the saved ones
            profile=str(profile) if profile else None,
            folder=str(folder) if folder else None,
            device=device,
        )
        self.state = ViewState()
        self.threads = WorkerThread(prefetch)
        self.worker = self.threads.worker
        self.review = ReviewController(self.stored, self)
        self.explain = ExplainController(self.worker, parent=self)
        self.exports = ExportController(self.worker, self.explain.new_job_id, self)
        self.trust = TrustTools(self)
        self.team = TeamTools(self)
        if session:
            self.team.ask_session(session)
        self._build_docks()
        self.profile = None
        self.profile_path: Path | None = None
        self.folder: Path | None = None
        self.device = "auto"
        self.classes: tuple[str, ...] = ()
        self.model_ready = False
        self._pending_image: str | None = None
        self._closing = False
        self._use_profile_defaults = True
        self._last_load: LoadModel | None = None
        self._weights_sha256 = ""
        self._build_toolbar()
        self._build_status_bar()
        self._build_menus()
        self.fit_docks()
        self._connect()
        self._show_options(frozenset(ViewOptions.__dataclass_fields__))

    # -- construction ---------------------------------------------------------------------------
    def _build_docks(self) -> None:
        self.view = OverlayView()
        self.images = ImagesDock(self)
        self.gallery = GalleryView(self.images.model)
        self.central = QTabWidget()
        self.central.setDocumentMode(True)  # a slim tab bar: the overlay keeps the pixels
        self.central.addTab(self.view, "Image")
        self.central.addTab(self.gallery, "Gallery")
        self.central.setTabToolTip(0, "The shown image's map (G switches)")
        self.central.setTabToolTip(1, "Overlays of the folder's explained images (G switches)")
        self.central.tabBar().setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.banner = NoticeBanner()
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.central, 1)
        self.setCentralWidget(holder)
        self.model_dock = ModelDock(self)
        self.prediction = PredictionPanel(self)
        self.summary = SummaryDock(self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.images)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.prediction)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.model_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.summary)
        self._fill_screen()

    def _fill_screen(self) -> None:
        """The first run's size: the screen's free area (the overlay wants every pixel)."""
        screen = self.screen()
        if screen is not None:
            available = screen.availableGeometry()
            self.resize(available.size())
            self.move(available.topLeft())

    def fit_docks(self) -> None:
        """The list and the panels at their content's width (each within a share of the window);
        the prediction panel at its content's height, with the model and summary tabbed behind
        it when both do not fit (a 720-px screen). The overlay gets the rest."""
        width = self.width()
        scrollbar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        panel = self.prediction.widget().widget().sizeHint() + QSize(0, RESULT_LINES_HEIGHT)
        self.images.fit_columns(round(LIST_SHARE * width))
        left = min(self.images.content_width(), round(LIST_SHARE * width))
        right = min(max(panel.width() + scrollbar, 240), round(PANEL_SHARE * width))
        area = self._dock_area_height()
        tabbed = area < panel.height() + MODEL_DOCK_MIN_HEIGHT
        self._arrange_panels(tabbed)
        self.resizeDocks([self.images, self.prediction], [left, right], Qt.Orientation.Horizontal)
        if not tabbed:
            top = panel.height() + 2 * SMALL
            self.resizeDocks(
                [self.prediction, self.model_dock], [top, area - top], Qt.Orientation.Vertical
            )

    def _arrange_panels(self, tabbed: bool) -> None:
        """Model and Summary as tabs behind Prediction (tabbed), or as tabs below it."""
        lower = (self.model_dock, self.summary)
        shown = [not dock.isHidden() for dock in lower]
        for dock in lower:  # Qt tabifies a dock already in a tab group only once it is out
            self.removeDockWidget(dock)
        if tabbed:
            self.tabifyDockWidget(self.prediction, self.model_dock)
        else:
            self.splitDockWidget(self.prediction, self.model_dock, Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.model_dock, self.summary)
        for dock, visible in zip(lower, shown, strict=True):
            dock.setVisible(visible)
        (self.prediction if tabbed else self.model_dock).raise_()

    def _dock_area_height(self) -> int:
        """The height the side docks share: the window less its menu, toolbar and status bars."""
        bars = (self.menuBar(), self.view_toolbar, self.statusBar())
        return self.height() - sum(bar.sizeHint().height() for bar in bars)

    def _fit_list(self) -> None:
        """Widen the list to show its file names whole, if that takes no more than its share."""
        limit = round(LIST_SHARE * self.width())
        self.images.fit_columns(limit)
        wanted = min(self.images.content_width(), limit)
        if self.images.width() < wanted:
            self.resizeDocks([self.images], [wanted], Qt.Orientation.Horizontal)

    def _build_toolbar(self) -> None:
        self.view_toolbar = ViewToolbar(self.state)
        self.addToolBar(self.view_toolbar)
        self.device_combo = DeviceChooser()
        self.view_toolbar.add_labelled(" Device ", self.device_combo)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.hover_label = QLabel()
        self.hover_label.setMinimumWidth(190)
        self.device_label = QLabel("device: —")
        self.time_label = QLabel("CAM: — ms")
        self.session_label = QLabel("no session")
        for widget in (
            self.exports.bar,
            self.exports.cancel_button,
            self.hover_label,
            self.team.label,
            self.session_label,
            self.device_label,
            self.time_label,
        ):
            status.addPermanentWidget(widget)

    def _build_menus(self) -> None:
        fill = {"file.recent": self._add_recent_menu, "view.docks": self._add_dock_toggles}
        actions = build_menus(self, fill=fill)
        self.auto_advance = actions["go.auto_advance"]
        self.blind_action = actions["review.blind"]
        with QSignalBlocker(self.auto_advance):  # showing the stored choice, not a new one
            self.auto_advance.setChecked(self.review.auto_advance)
        self._refresh_recent_menu()

    def _add_recent_menu(self, menu: QMenu) -> None:
        self.recent_menu = menu.addMenu("Recent profiles")

    def _add_dock_toggles(self, menu: QMenu) -> None:
        docks = (self.images, self.prediction, self.model_dock, self.summary)
        self._dock_actions = [dock.toggleViewAction() for dock in docks]
        for number, action in enumerate(self._dock_actions, start=1):
            action.setShortcut(QKeySequence(f"Alt+{number}"))
            menu.addAction(action)

    def _give_keys_back(self) -> None:
        """A choice made with the mouse in a combo box, slider or button hands the keyboard back
        to the list: the review keys (1-4, D, A, arrows) never stay in the widget just used."""
        bar, panel = self.view_toolbar, self.prediction
        combos = (bar.mode, bar.colormap, bar.blend, self.device_combo, panel.method)
        for combo in (*combos, panel.corrected, self.images.filter_mode):
            combo.activated.connect(self._focus_review)
        for combo in (self.gallery.sort, self.gallery.filter_mode):
            combo.activated.connect(self._focus_review)
        for slider in (bar.opacity, bar.threshold):
            slider.sliderReleased.connect(self._focus_review)
        for button in (bar.blur, bar.boxes, panel.back, *panel.buttons, *panel.verdict_buttons):
            button.clicked.connect(self._focus_review)
        self.images.filter.returnPressed.connect(self._focus_review)

    def _connect(self) -> None:
        self._give_keys_back()
        self.state.subscribe(self._options_changed)
        self.device_combo.currentIndexChanged.connect(self._device_chosen)
        self.prediction.sig_method_chosen.connect(lambda m: self.state.update(method=m))
        self.prediction.sig_target_chosen.connect(lambda t: self.state.update(target=t))
        self.prediction.sig_verdict_chosen.connect(self.set_verdict)
        self.prediction.sig_corrected_chosen.connect(self.set_corrected)
        self.model_dock.sig_layer_clicked.connect(lambda name: self.state.update(layer=name))
        self.model_dock.sig_open_profile.connect(self.open_profile_dialog)
        self.model_dock.sig_open_checkpoint.connect(self.open_checkpoint_dialog)
        self.images.sig_selected.connect(self._image_selected)
        self.gallery.sig_open.connect(self.open_from_gallery)
        self.gallery.list.selectionModel().currentChanged.connect(self._gallery_moved)
        self.central.currentChanged.connect(self._central_changed)
        self.view.sig_hover.connect(self.hover_label.setText)
        # visibilityChanged, not isVisible(): a tabbed dock behind another tab still reports
        # isVisible().
        self.summary.visibilityChanged.connect(self.review.set_summary_visible)
        for controller in (self.review, self.exports):
            controller.sig_message.connect(self._show_message)
            controller.sig_warning.connect(self._tell)
        self.review.sig_session_changed.connect(self._session_changed)
        self.review.sig_progress.connect(self._show_progress)
        self.review.sig_summary.connect(self._show_summary)
        self.review.sig_agreement.connect(self.summary.show_agreement)
        self.exports.sig_progress.connect(self.sig_export_progress)
        self.exports.sig_finished.connect(self.sig_export_finished)
        self.explain.sig_message.connect(self._show_message)
        self.explain.sig_computed.connect(self._computed)
        self.explain.sig_show.connect(self._show)
        self.explain.sig_result.connect(self.sig_result)
        # Bound methods, not lambdas: the worker emits from its thread and only a slot of an
        # object living here is queued to the GUI thread (a lambda would run on the worker and
        # crash Qt).
        self.worker.sig_model_loaded.connect(self._model_loaded)
        self.worker.sig_failed.connect(self._failed)
        self.worker.sig_cam_progress.connect(self._cam_progress)
        self.worker.sig_predicted.connect(self._predicted)
        self.worker.sig_exported.connect(self._exported_map)
        self.worker.sig_idle.connect(self.sig_worker_idle)
        self.worker.sig_notice.connect(self._notice)
        self.worker.sig_report_written.connect(self._report_written)
        self.worker.sig_report_progress.connect(self._report_progress)

    # -- start and settings ---------------------------------------------------------------------
    def start(self) -> None:
        """Restore the last session (or the demo) and start loading the model in the worker."""
        saved = self.stored.restore(self, self.state)
        if fit_window_to_screen(self):  # saved on a larger screen: the old dock sizes are off
            self.fit_docks()
        self._use_profile_defaults = saved is None
        places, gone = start_places(saved or SavedPlaces(), self._asked)
        for title, message in gone:
            self._tell(title, message)
        self._pending_image = places.image
        self.profile_path = places.profile
        self.open_folder(places.folder, peek_classes(places.profile))
        # Queued to the worker's thread ahead of the load: torch's shared libraries load there
        # with the GIL released, so the import that follows no longer freezes this window.
        QTimer.singleShot(0, self.worker, preload_torch_libraries)
        self.load_model(LoadModel(profile_path=self.profile_path, device=places.device))

    def save_settings(self) -> None:
        record = self.images.current_record()
        places = SavedPlaces(
            profile=str(self.profile_path) if self.profile_path is not None else None,
            folder=str(self.folder) if self.folder is not None else None,
            image=str(record.path) if record is not None else None,
            device=self.device,
        )
        self.stored.save(self, self.state.options, places)

    def _refresh_recent_menu(self) -> None:
        fill_recent_menu(self.recent_menu, self.stored.recent_profiles(), self.open_profile)

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
        self._adopt_model(loaded)
        if loaded.classes != self.classes and self.folder is not None:
            self.classes = loaded.classes
            self.open_folder(self.folder, loaded.classes)
        self.classes = loaded.classes
        self.prediction.set_classes(loaded.classes)
        self.images.model.clear_results()
        self.explain.clear()
        self.model_ready = True
        self._update_gallery()
        first_run, self._use_profile_defaults = self._use_profile_defaults, False
        changes = model_options(self.state.options, loaded.profile.cam, loaded.inventory, first_run)
        changed = self.state.update(**changes)  # may ask for the current CAM
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

    def _adopt_model(self, loaded: ModelLoaded) -> None:
        """Take the loaded model's profile, device and layers into the window."""
        self.profile = loaded.profile
        self._weights_sha256 = loaded.weights_sha256
        if loaded.profile.source is not None:
            self.profile_path = loaded.profile.source
            if loaded.profile.source != demo_profile_path():
                self.stored.remember_profile(loaded.profile.source)
                self._refresh_recent_menu()
        self.device_combo.set_cuda_available(loaded.cuda_available)
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
        self.device_combo.show_device(loaded.device)
        self.device_label.setText(f"device: {loaded.device}")
        pre = loaded.profile.preprocess
        self.model_dock.set_model(
            loaded.profile.name,
            f"{loaded.profile.architecture}, {len(loaded.classes)} classes, "
            f"input {pre.size[1]}×{pre.size[0]} — loaded in {loaded.seconds:.1f} s",
            loaded.inventory,
        )

    def _device_chosen(self, index: int) -> None:
        device = self.device_combo.itemData(index)
        if device != self.device and self._last_load is not None:
            self.load_model(dataclasses.replace(self._last_load, device=device))

    # -- images and maps ------------------------------------------------------------------------
    def open_folder(self, folder: Path, classes: tuple[str, ...] | None = None) -> None:
        try:
            records = scan_images(folder, classes if classes is not None else self.classes)
        except InspectorError as exc:
            self._tell("Cannot open folder", str(exc))
            return
        self.folder = folder
        self._update_title()
        self.images.set_records(records, str(folder), self.classes)
        self._fit_list()
        self._update_gallery()
        if not records:
            self.view.show_error(f"No images found in {folder}")
        elif self.model_ready:
            self.images.first()
        self._open_session()

    def _image_selected(self, record: ImageRecord) -> None:
        self._show_verdict()
        self.request_explain()
        if self.central.currentWidget() is self.gallery:  # after a verdict: the next one
            self.gallery.show_record(record)

    def _gallery_moved(self, current: QModelIndex, _previous: QModelIndex) -> None:
        """The highlighted thumbnail is the current image: a verdict, note or undo pressed in
        the gallery is for the image the user is looking at (it went to the image left in the
        hidden view)."""
        if not current.isValid() or self.central.currentWidget() is not self.gallery:
            return
        record = self.gallery.proxy.record(current)
        shown = self.images.current_record()
        if shown is None or shown.path != record.path:
            self._select_in_list(record)

    def _select_in_list(self, record: ImageRecord) -> None:
        """Make this image the list's current one, clearing the list's filter if it hides it."""
        if not self.images.select_record(str(record.path)):
            self.images.filter.clear()
            self.images.set_filter_mode("all")
            self.images.select_record(str(record.path))

    def request_explain(self) -> None:
        """Show the current image's map for the current options (cached, or from the worker)."""
        record = self.images.current_record()
        if record is None or not self.model_ready or self._closing:
            return
        self.explain.request(record, self.state.options, self.images.neighbours(PREFETCH_COUNT))

    def _computed(self, done: Explained) -> None:
        """A map the model made (shown or not): its row and the session take the prediction."""
        result = done.result
        pred = result.predicted
        hit = energy = None
        if result.target_index == pred.index:  # localisation scores are for the prediction
            hit = pointing_hit(result.cam, done.boxes)
            energy = energy_in_box(result.cam, done.boxes)
            self.review.record_result(done.record, pred.name, pred.probability, hit, energy)
        self.images.model.set_result(
            done.record, RowResult(pred.name, pred.probability, pointing_hit=hit)
        )
        if result.target_index == pred.index:  # the gallery shows where the prediction looks
            self._add_to_gallery(done.record, result, done.image)

    def _add_to_gallery(
        self, record: ImageRecord, result: CamResult, image: np.ndarray | None
    ) -> None:
        o = self.state.options
        if (result.layer, result.method) == (o.layer, o.method) and not o.blur:
            self.gallery.cache.add(record, result.cam, o.style, image)

    def _exported_map(self, record: ImageRecord, result: CamResult) -> None:
        """A folder export's map: its thumbnail joins the gallery (the image is read there)."""
        if result.target_index == result.predicted.index:
            self._add_to_gallery(record, result, None)

    def _gallery_key(self) -> GalleryKey | None:
        if self.folder is None or not self.model_ready:
            return None
        profile = str(self.profile_path) if self.profile_path else self._weights_sha256
        o = self.state.options
        smoothing = "+".join(
            n for n, on in (("aug", o.smoothing.aug), ("eigen", o.smoothing.eigen)) if on
        )
        return GalleryKey(str(self.folder), profile, o.layer, o.method, smoothing)

    def _update_gallery(self) -> None:
        self.gallery.cache.set_key(self._gallery_key())
        self.gallery.refresh()

    def _central_changed(self, index: int) -> None:
        if self.central.widget(index) is self.gallery:
            self.gallery.refresh()  # the newest verdicts and results, in the chosen order
            self.gallery.show_record(self.images.current_record())
            self.gallery.list.setFocus()
        else:
            self.images.table.setFocus()

    def toggle_gallery(self) -> None:
        """Switch between the image and the gallery."""
        showing = self.central.currentWidget() is self.gallery
        self.central.setCurrentWidget(self.view if showing else self.gallery)

    def open_from_gallery(self, record: ImageRecord) -> None:
        """Show this image in the main view (clearing the list's filter if it hides it)."""
        self._select_in_list(record)
        self.central.setCurrentWidget(self.view)

    def _show(self, done: Explained) -> None:
        result = done.result
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

    def _options_changed(self, names: frozenset[str]) -> None:
        self._show_options(names)
        if names & {"layer", "method", "smoothing"}:
            self._update_gallery()
        if names & CAM_FIELDS:
            self.request_explain()
        else:
            self.view.refresh(self.state.options)

    def _show_options(self, names: frozenset[str]) -> None:
        """The docks' choosers of the changed options (the toolbar keeps itself in step)."""
        o = self.state.options
        if "method" in names:
            with QSignalBlocker(self.prediction):
                self.prediction.set_method(o.method)
        if "layer" in names:
            with QSignalBlocker(self.model_dock):
                self.model_dock.set_current(o.layer)

    # -- failures and messages ------------------------------------------------------------------
    def _failed(self, failed: JobFailed) -> None:
        if self._closing:
            return  # queued before the worker stopped; the window is going away
        self._report_failure(failed)
        self.sig_error.emit(failed)

    def _report_failure(self, failed: JobFailed) -> None:
        if failed.kind == "model" and failed.trust and self._last_load is not None:
            self.model_dock.set_loading("No model loaded")
            self._ask_trust(failed, self._last_load)
            return
        if failed.kind == "model":
            self.model_dock.set_loading("No model loaded")
            self.view.show_error(f"Cannot load the model:\n{failed.message}")
            self._tell("Cannot load the model", failed.message)
            return
        if failed.kind == "export":
            self.exports.failed(failed.message)
            return
        if failed.kind == "report":
            self._tell("Report failed", failed.message)
            return
        if failed.record is not None:
            self.images.model.set_result(failed.record, RowResult("error", None, failed.message))
        if self.explain.failed(failed.job_id):
            self.view.show_error(failed.message)
            self.prediction.clear("")
            self.statusBar().showMessage(failed.message, 10000)

    def _cam_progress(self, done: int, total: int) -> None:
        self.statusBar().showMessage(f"Score-CAM: {done}/{total} masked passes…")

    def _notice(self, text: str) -> None:
        """A remark on the model from the worker (how loading or its output was read)."""
        log.info("model note: %s", text)
        self.statusBar().showMessage(text, 15000)

    def _show_message(self, text: str, timeout_ms: int) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def _ask_trust(self, failed: JobFailed, job: LoadModel) -> None:
        """Offer to load a file that would run code (nothing of it has run yet)."""
        spec = job.checkpoint
        can_remember = (spec is not None and spec.save_profile_to is not None) or (
            spec is None and job.profile_path is not None and job.profile_path.is_file()
        )
        dialog = TrustDialog(self, failed.message, failed.trust, can_remember)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._load_trusted(job, dialog))
        self.statusBar().showMessage(failed.message, 15000)
        dialog.open()

    def _load_trusted(self, job: LoadModel, dialog: TrustDialog) -> None:
        trusted = dataclasses.replace(
            job,
            trust_pickle=job.trust_pickle or dialog.what == "pickle",
            trust_code=job.trust_code or dialog.what == "code",
            remember_trust=dialog.remember.isChecked(),
        )
        self.load_model(trusted)

    def _tell(self, title: str, message: str) -> None:
        """A notice above the image for things the user must act on; the status bar repeats it.

        Not a message box: a window-modal box swallowed the review keys until dismissed.
        """
        self.statusBar().showMessage(message, 15000)
        if not self._closing:
            self.banner.tell(title, message)

    # -- keyboard -------------------------------------------------------------------------------
    def escape(self) -> None:
        """Esc: close the notice and give the keys back to the list (from a filter or a combo)."""
        self.banner.hide()
        self._focus_review()

    def _focus_review(self, *_args: object) -> None:
        """The review keys' widget: the list, or the gallery when it is shown."""
        showing_gallery = self.central.currentWidget() is self.gallery
        (self.gallery.list if showing_gallery else self.images.table).setFocus()

    def focus_filter(self) -> None:
        self.images.show()
        self.images.filter.setFocus()
        self.images.filter.selectAll()

    def next_mode(self) -> None:
        modes = list(ViewMode)
        self.state.update(mode=modes[(modes.index(self.state.options.mode) + 1) % len(modes)])

    def toggle_boxes(self) -> None:
        self.state.update(show_boxes=not self.state.options.show_boxes)

    def nudge_opacity(self, steps: int) -> None:
        alpha = round(self.state.options.alpha + OPACITY_STEP * steps, 2)
        self.state.update(alpha=min(1.0, max(0.0, alpha)))

    def show_shortcuts(self) -> ShortcutsSheet:
        native = QKeySequence.SequenceFormat.NativeText
        docks = [  # their keys are set when the View menu is built, not in ACTIONS
            ("View", a.shortcut().toString(native), f"Show or hide {a.text()}")
            for a in self._dock_actions
        ]
        sheet = ShortcutsSheet(ACTIONS, self, docks)
        sheet.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        sheet.show()  # not modal: read it while trying the keys
        return sheet

    def _ask_folder(self, title: str, start: str = "") -> Path | None:
        chosen = QFileDialog.getExistingDirectory(self, title, start)
        return Path(chosen) if chosen else None

    # -- review (ui/review.py keeps the session; the window shows it) ---------------------------
    def session_path(self) -> Path | None:
        """Where this folder and profile's session lives: the chosen file, else the default."""
        return self.review.session_path(self.folder, self.profile_path)

    def session_context(self) -> SessionContext | None:
        if self.folder is None or not self.model_ready:
            return None
        o = self.state.options
        return SessionContext(
            self.folder, self.profile_path, self._weights_sha256, o.layer, o.method
        )

    def rel_paths(self) -> tuple[str, ...]:
        return tuple(r.rel_path.as_posix() for r in self.images.model.records)

    def _open_session(self) -> None:
        if (context := self.session_context()) is not None and not self.team.open_asked():
            self.review.open(context, self.rel_paths())

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
        """Record this folder and profile's verdicts in path (see ReviewController.use_file)."""
        context = self.session_context()
        if context is None:
            self._tell("No session yet", "Open a folder and wait for the model to load first.")
            return False
        return self.review.use_file(path, context, self.rel_paths())

    def current_rel_path(self) -> str | None:
        record = self.images.current_record()
        return None if record is None else record.rel_path.as_posix()

    def set_verdict(self, code: int) -> None:
        """Record a verdict for the current image (committed at once), then move on."""
        following = self.images.neighbours(1)  # before the filter may hide this row
        after = following[0].rel_path.as_posix() if following else None
        o = self.state.options
        view = VerdictView(o.layer, o.method, o.target, BLUR_SIGMA if o.blur else 0.0)
        self._show_change(self.review.set_verdict(self.current_rel_path(), code, after, view))

    def set_corrected(self, corrected: str | None) -> None:
        """Store (or clear, with None) a corrected class with the current image's verdict."""
        self.review.set_corrected(self.current_rel_path(), corrected)
        self._show_verdict()

    def undo(self) -> None:
        """Revert the latest verdict or note of this sitting and show that image."""
        self._show_change(self.review.undo())

    def edit_note(self) -> None:
        rel = self.current_rel_path()
        if self.review.session is None or rel is None:
            self.statusBar().showMessage("No session: notes are not recorded", 5000)
            return
        current = self.review.verdict(rel)
        text, ok = QInputDialog.getMultiLineText(
            self, "Note", f"Note for {rel}:", (current.note or "") if current else ""
        )
        if ok:
            self.set_note(text)

    def set_note(self, text: str) -> None:
        """Set (or clear, with blank text) the current image's note."""
        self.review.set_note(self.current_rel_path(), text)
        self._show_verdict()

    def export_report(self, output: Path | None = None) -> int | None:
        """Write report.csv and report.html of the session in the worker, each gallery overlay
        drawn again with the loaded model, as `report` does on the command line; returns the
        job id (sig_report_written follows), None when nothing is written."""
        data = self.review.report_data()
        if data is not None and output is None:
            output = self._ask_folder("Export report to")
        if data is None or output is None:
            return None
        job_id = self.explain.new_job_id()
        self.worker.submit(ExportReport(job_id, data, output))
        self.statusBar().showMessage(f"Writing the report to {output}…")
        return job_id

    def _report_progress(self, drawn: int, cards: int) -> None:
        self.statusBar().showMessage(f"Writing the report: {drawn}/{cards} overlays drawn…")

    def _report_written(self, written: ReportWritten) -> None:
        if self._closing:
            return
        files: ReportFiles = written.files
        self.statusBar().showMessage(f"Wrote {files.csv} and {files.html}", 15000)
        self.sig_report_written.emit(files)

    def _show_change(self, change: VerdictChange | None) -> None:
        if change is not None:
            self.images.model.set_verdict(change.rel_path, change.code)
            if change.go_to is not None:
                self.images.select_rel_path(change.go_to)
        self._show_verdict()
        self.team.show_disputes()  # the list's disagreement marks follow the verdict

    def _show_verdict(self) -> None:
        verdict = self.review.verdict(self.current_rel_path())
        if verdict is None:
            self.prediction.show_verdict(None, None)
        else:
            self.prediction.show_verdict(verdict.code, verdict.note, verdict.corrected)
        self.team.show_panel()

    def _session_changed(self) -> None:
        self.prediction.set_verdict_labels(self.review.labels())
        self.images.model.set_verdicts(self.review.verdicts())
        self.team.session_changed()
        self._show_verdict()
        self.team.show_disputes()

    def _show_progress(self, text: str, tooltip: str) -> None:
        self.session_label.setText(text)
        if tooltip:
            self.session_label.setToolTip(tooltip)

    def _show_summary(self, counts: list, labels: tuple[str, ...] | None, rows: list) -> None:
        self.summary.show_counts(counts, labels)
        self.summary.show_records(rows)

    # -- dialogs and exports --------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        folder = self._ask_folder("Open image folder", str(self.folder or Path.home()))
        if folder is not None:
            self.open_folder(folder)

    def open_profile_dialog(self) -> None:
        start = str(self.profile_path.parent if self.profile_path else Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open model profile",
            start,
            "Model profiles (*.toml);;Hugging Face model folder (config.json)",
        )
        if path:
            # A save_pretrained folder is its own profile: its config.json stands for it.
            chosen = Path(path)
            self.open_profile(chosen.parent if chosen.name == "config.json" else chosen)

    def open_checkpoint_dialog(self) -> None:
        dialog = CheckpointDialog(self, self.classes)
        if dialog.exec():
            self.profile_path = None
            self.load_model(LoadModel(checkpoint=dialog.spec(), device=self.device))

    def export_current(self, folder: Path | None = None) -> list[Path]:
        """Heatmap, overlay and three-panel PNGs and the raw map of the shown image."""
        shown = self.explain.last_explained
        if folder is None and shown is not None:
            folder = self._ask_folder("Export current image to")
        return self.exports.export_current(shown, folder, self.state.options)

    def export_folder(self, output: Path | None = None, batch_size: int = 4) -> int | None:
        """Start the batch export of the listed (filtered) images; returns its job id."""
        if not self.model_ready or self.exports.running:
            self.statusBar().showMessage("An export is running or the model is not ready", 5000)
            return None
        output = output or self._ask_folder("Export folder results to")
        if output is None:
            return None
        records = self.images.visible_records()
        return self.exports.export_folder(
            records, self.folder, output, self.state.options, batch_size
        )

    # -- title, about, closing ------------------------------------------------------------------
    def _update_title(self) -> None:
        name = self.profile.name if self.profile is not None else None
        if name is None and self.profile_path is not None:
            name = self.profile_path.stem
        self.setWindowTitle(window_title(self.folder, name))

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

    def shutdown(self) -> bool:
        """Cancel what runs, stop the worker thread and wait for it; True when it ended."""
        self._closing = True
        self.explain.close()
        self.exports.close()
        self.images.thumbnails.close()
        self.gallery.cache.close()
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
                self.review.close()
                event.accept()
