"""Tests for values a user types or a file holds: CLI numbers, profile paths, TOML, pickles,
a profile's input size, the report of a 1,000-class session: each a one-line refusal."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest
import torch

from engine.cam import CamEngine
from engine.checkpoint import load_model
from engine.cli import build_parser
from engine.errors import InspectorError
from engine.profile import load_profile
from engine.session import Session, SessionContext
from tests.conftest import NEU, TinyNet, engine_records
from tests.engine.memory_child import run_limited
from tests.engine.test_checkpoint import neu_profile

MB = 1024**2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["batch", "--threshold", "7"], "argument --threshold: '7' is not a number from 0 to 1"),
        (
            ["batch", "--threshold", "nan"],
            "argument --threshold: 'nan' is not a number from 0 to 1",
        ),
        (["batch", "--alpha", "-0.5"], "argument --alpha: '-0.5' is not a number from 0 to 1"),
        (["batch", "--blur", "1e9"], "argument --blur: '1e9' is not a number from 0 to 1000"),
        (["batch", "--blur", "inf"], "argument --blur: 'inf' is not a number from 0 to 1000"),
        (
            ["batch", "--batch-size", "0"],
            "argument --batch-size: '0' is not a whole number from 1 to 4096",
        ),
        (
            ["batch", "--max-pixels", "-1"],
            "argument --max-pixels: '-1' is not a whole number from 1",
        ),
        (
            ["train-demo", "--epochs", "0"],
            "argument --epochs: '0' is not a whole number from 1 to 10000",
        ),
        (
            ["demo-data", "--output", "x", "--count", "0"],
            "argument --count: '0' is not a whole number from 1 to 100000",
        ),
    ],
)
def test_numbers_out_of_range_are_one_line_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    command = argv[0]
    assert capsys.readouterr().err == (
        f"error: {message}; see 'gradcam-inspector {command} --help'\n"
    )


def _profile(folder: Path, weights: str) -> Path:
    path = folder / "p.toml"
    path.write_text(f'architecture = "resnet18"\nweights = "{weights}"\n', encoding="utf-8")
    return path


def test_weights_paths_that_cannot_be_followed_are_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop.pth"
    loop.symlink_to(loop)
    for weights, reason in (
        (str(loop), r"weights cannot be followed \(Symlink loop"),
        ("a\\u0000b.pth", r"weights is not a usable path \(7 characters\)"),
        ("x" * 5000, r"weights is not a usable path \(5000 characters\)"),
    ):
        with pytest.raises(InspectorError, match=reason) as info:
            load_profile(_profile(tmp_path, weights))
        assert "\n" not in str(info.value)


def test_profile_paths_that_cannot_be_read_are_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    for path, reason in (
        (loop, "Too many levels of symbolic links"),
        (tmp_path / "a\0b.toml", "embedded null byte"),
        (tmp_path / ("x" * 5000), "File name too long"),
    ):
        with pytest.raises(InspectorError, match=f"cannot read profile path .*{reason}"):
            load_profile(path)


def test_a_deeply_nested_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(InspectorError, match=r"^profile 'deep.toml' is nested too deeply to read$"):
        load_profile(path)


def test_torchs_newer_unsupported_global_message_gets_the_short_refusal(tmp_path: Path) -> None:
    """torch >= 2.6 says 'Trying to load unsupported GLOBAL posix.system whose module ...'."""
    path = tmp_path / "x.pt"
    torch.save({"x": os.system}, path)
    with pytest.raises(InspectorError) as info:
        load_model(neu_profile(path))
    assert str(info.value) == (
        f"'x.pt' is a full pickled model or holds other Python objects ({os.system.__module__}"
        ".system), which can run code when loaded; load it only if you trust its source: "
        "set trust_pickle = true in the profile or pass --trust-pickle"
    )


def test_an_input_size_too_large_for_memory_is_refused_before_any_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("engine.memory.available_bytes", lambda device: 2 * 1024**3)
    with pytest.raises(InspectorError) as info:
        CamEngine(TinyNet(), NEU[:3], *engine_records((8192, 8192)), "cpu")
    assert str(info.value) == (
        "input size 8192x8192 needs about 64.0 GB for one image's pass, and 2.0 GB is free on "
        "cpu; choose a smaller preprocess.size in the profile"
    )
    CamEngine(TinyNet(), NEU[:3], *engine_records((224, 224)), "cpu")  # 49 MB fits


def test_the_report_of_a_1000_class_session_stays_bounded(tmp_path: Path) -> None:
    """The confusion figure of 1,000 classes needed a 5.9 GB canvas; now the 30 most confused."""
    path = tmp_path / "s.sqlite"
    context = SessionContext(tmp_path / "images", None, "ab" * 32, "features", "gradcam")
    Session.open(path, context, reviewer="ann").close()
    rows = [(f"{i}.png", f"c{i}", f"c{(i + i % 7) % 1000}", 0.5) for i in range(1000)]
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO images VALUES (?, ?, ?, ?, NULL, NULL)", rows)
    conn.commit()
    conn.close()
    child = run_limited(
        "import re, base64, cv2, numpy as np\n"
        "from engine.report import write_report\nfrom engine.session import Session",
        f"""
        with Session.open_existing({str(path)!r}, read_only=True) as session:
            files = write_report(session, {str(tmp_path / "rep")!r})
        text = files.html.read_text()
        for title, data in re.findall(r'alt="([^"]+)" src="data:image/png;base64,([^"]+)"', text):
            image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), 1)
            print(title, *image.shape[:2], sep="|")
        """,
        1024 * MB,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    figures = {
        line.split("|")[0]: tuple(map(int, line.split("|")[1:]))
        for line in child.stdout.splitlines()
    }
    confusion = figures["Prediction vs ground truth (30 most confused of 1000 classes)"]
    assert confusion == (150 + 44 * 30 + 40, 170 + 44 * 30 + 20)
    assert re.search(r"30 most confused of 1000", (tmp_path / "rep" / "report.html").read_text())
