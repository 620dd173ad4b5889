"""The window's commands as data (id, title, menu, shortcut, callback) and the one menu builder.

Adding a command is one ActionSpec in ACTIONS; its place in the tuple is its place in its menu.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from ui.about import APP_NAME
from ui.trust_dialogs import SMOOTH_AUG, SMOOTH_EIGEN
from ui.trust_dialogs import TITLES as TRUST_TITLES

if TYPE_CHECKING:
    from ui.main_window import MainWindow

Shortcut = str | QKeySequence.StandardKey
# Tools > (trust checks): Ctrl+Alt+<letter>, clear of the review keys and the File/View keys.
TRUST_KEYS = {"sanity": "S", "methods": "M", "layers": "L", "metrics": "T"}


@dataclass(frozen=True)
class ActionSpec:
    """One command. ``menu`` None: a shortcut only (it still works with the menu bar hidden).

    A checkable entry has ``toggle`` (called with its new state) instead of ``run``.
    """

    id: str
    title: str
    menu: str | None
    run: Callable[[MainWindow], object] | None = None
    shortcut: Shortcut | None = None
    toggle: Callable[[MainWindow, bool], object] | None = None


@dataclass(frozen=True)
class Separator:
    menu: str


@dataclass(frozen=True)
class Placeholder:
    """Entries the window fills in when the menus are built (the recent files, dock toggles)."""

    id: str
    menu: str


MenuEntry = ActionSpec | Separator | Placeholder


def _verdict(code: int) -> ActionSpec:
    return ActionSpec(
        f"review.verdict{code}",
        f"Verdict {code}",
        "&Review",
        lambda w: w.set_verdict(code),
        str(code),
    )


def _final(code: int) -> ActionSpec:
    return ActionSpec(
        f"review.final{code}",
        f"Final verdict {code} (as lead)",
        "&Review",
        lambda w: w.team.adjudicate(code),
        f"Ctrl+{code}",
    )


ACTIONS: tuple[MenuEntry, ...] = (
    ActionSpec(
        "file.open_folder", "Open folder…", "&File", lambda w: w.open_folder_dialog(), "Ctrl+O"
    ),
    ActionSpec(
        "file.open_profile", "Open profile…", "&File", lambda w: w.open_profile_dialog(), "Ctrl+P"
    ),
    ActionSpec(
        "file.open_checkpoint",
        "Open checkpoint…",
        "&File",
        lambda w: w.open_checkpoint_dialog(),
        "Ctrl+Shift+O",
    ),
    Placeholder("file.recent", "&File"),
    ActionSpec(
        "file.session", "Session file…", "&File", lambda w: w.choose_session_file(), "Ctrl+Shift+S"
    ),
    ActionSpec(
        "file.team", "Team session…", "&File", lambda w: w.team.open_dialog(), "Ctrl+Shift+T"
    ),
    Separator("&File"),
    ActionSpec(
        "file.export_current",
        "Export current image…",
        "&File",
        lambda w: w.export_current(),
        "Ctrl+E",
    ),
    ActionSpec(
        "file.export_folder", "Export folder…", "&File", lambda w: w.export_folder(), "Ctrl+Shift+E"
    ),
    ActionSpec(
        "file.export_report", "Export report…", "&File", lambda w: w.export_report(), "Ctrl+R"
    ),
    Separator("&File"),
    ActionSpec("file.quit", "Quit", "&File", lambda w: w.close(), "Ctrl+Q"),  # Cmd+Q on macOS
    ActionSpec("view.fit", "Fit to window", "&View", lambda w: w.view.fit(), "Ctrl+F"),
    ActionSpec(
        "view.actual_size", "Actual size (1:1)", "&View", lambda w: w.view.actual_size(), "Ctrl+0"
    ),
    ActionSpec("view.gallery", "Gallery / image", "&View", lambda w: w.toggle_gallery(), "G"),
    ActionSpec("view.mode", "Next view mode", "&View", lambda w: w.next_mode(), "M"),
    ActionSpec("view.boxes", "Ground-truth boxes on/off", "&View", lambda w: w.toggle_boxes(), "B"),
    ActionSpec(
        "view.less_heat", "Less heatmap opacity", "&View", lambda w: w.nudge_opacity(-1), "["
    ),
    ActionSpec(
        "view.more_heat", "More heatmap opacity", "&View", lambda w: w.nudge_opacity(1), "]"
    ),
    ActionSpec("view.filter", "Filter the list…", "&View", lambda w: w.focus_filter(), "Ctrl+L"),
    Separator("&View"),
    Placeholder("view.docks", "&View"),
    ActionSpec("go.next", "Next image (D, Right)", "&Go", lambda w: w.images.step(1), "D"),
    ActionSpec("go.previous", "Previous image (A, Left)", "&Go", lambda w: w.images.step(-1), "A"),
    ActionSpec("go.first", "First image", "&Go", lambda w: w.images.first(), "Home"),
    ActionSpec("go.last", "Last image", "&Go", lambda w: w.images.last(), "End"),
    ActionSpec(
        "go.escape", "Close the notice, back to the list", None, lambda w: w.escape(), "Esc"
    ),
    ActionSpec("go.next_arrow", "Next image", None, lambda w: w.images.step(1), "Right"),
    ActionSpec("go.previous_arrow", "Previous image", None, lambda w: w.images.step(-1), "Left"),
    Separator("&Go"),
    ActionSpec(
        "go.auto_advance",
        "Auto-advance after a verdict",
        "&Go",
        toggle=lambda w, on: w.review.set_auto_advance(on),
        shortcut="Ctrl+Shift+A",
    ),
    *(_verdict(code) for code in (1, 2, 3, 4)),
    ActionSpec("review.note", "Note…", "&Review", lambda w: w.edit_note(), "N"),
    ActionSpec(
        "review.explain_prediction",
        "Explain the prediction",
        "&Review",
        lambda w: w.state.update(target="pred"),
        "P",
    ),
    ActionSpec("review.undo", "Undo verdict or note", "&Review", lambda w: w.undo(), "Ctrl+Z"),
    Separator("&Review"),
    *(_final(code) for code in (1, 2, 3, 4)),
    ActionSpec(
        "review.clear_final",
        "Clear the final verdict",
        "&Review",
        lambda w: w.team.clear_adjudication(),
        "Ctrl+Del",
    ),
    ActionSpec(
        "review.blind",
        "Blind mode (this session)",
        "&Review",
        shortcut="Ctrl+Shift+B",
        toggle=lambda w, on: w.team.set_blind(on),
    ),
    ActionSpec(
        "review.refresh", "Read others' verdicts again", "&Review", lambda w: w.team.refresh(), "F5"
    ),
    ActionSpec(
        "review.history",
        "History of this image…",
        "&Review",
        lambda w: w.team.show_history(),
        "Ctrl+H",
    ),
    ActionSpec(
        "review.reviewer",
        "Reviewer name…",
        "&Review",
        lambda w: w.team.ask_reviewer(),
        "Ctrl+Shift+N",
    ),
    *(
        ActionSpec(
            f"tools.{tool}",
            f"{title}…",
            "&Tools",
            lambda w, t=tool: w.trust.open(t),
            f"Ctrl+Alt+{TRUST_KEYS[tool]}",
        )
        for tool, title in TRUST_TITLES.items()
    ),
    Separator("&Tools"),
    ActionSpec(
        "tools.aug_smooth",
        SMOOTH_AUG,
        "&Tools",
        shortcut="Ctrl+Alt+A",
        toggle=lambda w, on: w.trust.set_smoothing(aug=on),
    ),
    ActionSpec(
        "tools.eigen_smooth",
        SMOOTH_EIGEN,
        "&Tools",
        shortcut="Ctrl+Alt+G",
        toggle=lambda w, on: w.trust.set_smoothing(eigen=on),
    ),
    ActionSpec(
        "tools.export_metrics",
        "Faithfulness metrics in folder exports",
        "&Tools",
        shortcut="Ctrl+Alt+E",
        toggle=lambda w, on: w.trust.set_export_metrics(on),
    ),
    ActionSpec("help.shortcuts", "Keyboard shortcuts", "&Help", lambda w: w.show_shortcuts(), "F1"),
    ActionSpec("help.about", f"About {APP_NAME}", "&Help", lambda w: w.show_about(), "Shift+F1"),
)


def build_menus(
    window: MainWindow,
    entries: Sequence[MenuEntry] = ACTIONS,
    fill: Mapping[str, Callable[[QMenu], None]] | None = None,
) -> dict[str, QAction]:
    """Create the menus and actions in entry order; returns the actions by id.

    Every action is also added to the window, so its shortcut works with the menu bar hidden.
    ``fill`` builds each Placeholder's entries into its menu.
    """
    menus: dict[str, QMenu] = {}
    actions: dict[str, QAction] = {}
    for entry in entries:
        menu = None
        if entry.menu is not None:
            if entry.menu not in menus:
                menus[entry.menu] = window.menuBar().addMenu(entry.menu)
            menu = menus[entry.menu]
        if isinstance(entry, Separator):
            assert menu is not None
            menu.addSeparator()
        elif isinstance(entry, Placeholder):
            assert menu is not None
            (fill or {})[entry.id](menu)
        else:
            actions[entry.id] = _make_action(window, entry)
            if menu is not None:
                menu.addAction(actions[entry.id])
    return actions


def _make_action(window: MainWindow, spec: ActionSpec) -> QAction:
    action = QAction(spec.title, window)
    if spec.shortcut is not None:
        key = QKeySequence(spec.shortcut)
        action.setShortcut(key)
        native = key.toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{spec.title.rstrip('…')} ({native})")  # the key where it is shown
    window.addAction(action)  # shortcuts work even with the menu bar hidden
    # The callbacks run on the GUI thread (a QAction is triggered there): lambdas are safe here.
    if spec.toggle is not None:
        toggle = spec.toggle
        action.setCheckable(True)
        action.toggled.connect(lambda on: toggle(window, on))
    elif spec.run is not None:
        run = spec.run
        action.triggered.connect(lambda _checked=False: run(window))
    return action


def fill_recent_menu(
    menu: QMenu, paths: Sequence[str], open_profile: Callable[[Path], object]
) -> None:
    """Replace the recent-profiles submenu's entries; disabled when there are none."""
    menu.clear()
    for path in paths:
        action = menu.addAction(path)
        action.triggered.connect(lambda _=False, p=path: open_profile(Path(p)))
    menu.setEnabled(bool(paths))
