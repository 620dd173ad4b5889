"""ui/thumbnails.py on hostile files: a sparse 20 GB '.png' gets no thumbnail and is never read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.engine.memory_child import run_limited


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux")
def test_a_sparse_20_gb_file_gets_no_thumbnail_and_no_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(20 * 1024**3)
    child = run_limited(
        "from ui.thumbnails import make_thumbnail",
        f"print(make_thumbnail({str(path)!r}))",
        64 * 1024**2,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "None"
