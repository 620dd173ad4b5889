"""The layering rules: the engine never imports Qt, and the window never imports torch at import."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from tests.conftest import modules_loaded_by

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_ENGINE = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "qtpy", "ui")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_never_imports_qt() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "engine").rglob("*.py"))
        for name in _imported_modules(path)
        if name.split(".")[0] in FORBIDDEN_IN_ENGINE
    }
    assert not offenders, sorted(offenders)


def test_window_modules_do_not_import_torch() -> None:
    """The window shows while the worker thread imports torch; importing ui must not pull it in."""
    assert modules_loaded_by("import main, ui.main_window", ("torch", "torchvision")) == []


def test_window_modules_do_not_import_the_session_store() -> None:
    """SQLAlchemy, Alembic and psycopg cost ~0.25 s: they load when a session opens, after the
    window shows (the window reads the records in engine/session_records)."""
    store = ("sqlalchemy", "alembic", "psycopg", "engine.session", "engine.session_pg")
    assert modules_loaded_by("import main, ui.main_window", store) == []


def test_method_registry_imports_without_torch() -> None:
    """The window lists methods before torch is loaded: the registry must not pull it in."""
    code = "import engine.methods, engine.profile\nengine.methods.get_method('scorecam')"
    assert modules_loaded_by(code, ("torch", "numpy")) == []


def test_the_method_registry_is_the_only_list_of_methods(qtbot, tmp_path: Path) -> None:
    """Profile validation, the CLI's --method, the window's chooser and its view state all read
    engine/methods/registry.py, so a new entry there reaches every one of them."""
    from engine.cli import build_parser
    from engine.errors import InspectorError
    from engine.methods import METHODS, method_names
    from engine.profile import load_profile
    from ui.prediction_panel import PredictionPanel
    from ui.view_state import ViewState

    names = method_names()
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    batch = commands.choices["batch"]
    option = next(a for a in batch._actions if "--method" in a.option_strings)
    assert tuple(option.choices) == names
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    chooser = [(panel.method.itemData(i), panel.method.itemText(i)) for i in range(len(names))]
    assert panel.method.count() == len(names)
    assert chooser == [(spec.name, spec.label) for spec in METHODS]
    profile = tmp_path / "p.toml"
    for name in names:
        profile.write_text(f'architecture = "resnet18"\n[cam]\nmethod = "{name}"\n', "utf-8")
        assert load_profile(profile).cam.method == name
        ViewState().update(method=name)
    with pytest.raises(InspectorError, match=re.escape(", ".join(names))):
        ViewState().update(method="gradcam3")


def test_ray_is_imported_only_by_a_ray_batch(tmp_path: Path) -> None:
    """Ray is an optional extra that takes seconds to import: the window and the local batch
    must run without it (and without it installed)."""
    assert modules_loaded_by("import main, ui.main_window", ("ray",)) == []
    out = tmp_path / "out"
    code = f"from engine.cli import run\nassert run(['batch', '--output', {str(out)!r}]) == 0"
    assert modules_loaded_by(code, ("ray", "pyarrow")) == []
    assert (out / "results.csv").is_file()
