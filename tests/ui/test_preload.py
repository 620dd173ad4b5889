"""Tests for ui/preload.py: torch's libraries load with the GIL released, and import works after."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ui import preload

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter (this one has torch imported): preload in a thread while the main
# thread ticks every millisecond; print the preload's time, the longest tick gap, whether the
# libraries are mapped before `import torch`, and a computation with torch afterwards. cv2 first,
# as in the app: it sets os.environ["LD_LIBRARY_PATH"], which the loader never sees.
CHILD = """
import cv2
import sys, threading, time
from ui.preload import preload_torch_libraries
took = []
worker = threading.Thread(target=lambda: took.append(preload_torch_libraries()))
last = time.perf_counter()
longest = 0.0
worker.start()
while worker.is_alive():
    time.sleep(0.001)
    now = time.perf_counter()
    longest = max(longest, now - last)
    last = now
mapped = "libtorch_cpu.so" in open("/proc/self/maps").read()
before = "torch" in sys.modules
import torch
print(took[0], longest, mapped, before, float(torch.ones(3).sum()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux-only")
def test_preload_loads_libtorch_without_holding_the_gil() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in (preload.DISABLE_ENV, "LD_LIBRARY_PATH"):  # this process imported cv2
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    took, longest, mapped, before, total = done.stdout.split()
    assert (mapped, before, float(total)) == ("True", "False", 3.0)
    # Held, the GIL would stop the ticks for most of the preload (libtorch_cpu alone is
    # hundreds of ms of static initialisers); released, they go on.
    assert float(took) > 0.05
    assert float(longest) < 0.5 * float(took), (took, longest)


def test_preload_is_skipped_where_it_has_nothing_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "torch" in sys.modules  # the test session has imported it: nothing left to load
    assert preload.preload_torch_libraries() == 0.0
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setenv(preload.DISABLE_ENV, "1")
    assert preload.preload_torch_libraries() == 0.0
    monkeypatch.delenv(preload.DISABLE_ENV)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert preload.preload_torch_libraries() == 0.0


def test_torch_library_dir_is_found_without_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    assert preload.torch_library_dir() == Path(torch.__file__).parent / "lib"
    frozen = tmp_path / "torch" / "lib"
    frozen.mkdir(parents=True)
    (frozen / "libtorch_cpu.so").write_bytes(b"")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert preload.torch_library_dir() == frozen


@pytest.mark.skipif(
    preload.torch_library_dir() is None
    or not (preload.torch_library_dir() / "libtorch_cuda.so").is_file(),  # type: ignore[operator]
    reason="needs a CUDA build of torch",
)
def test_cuda_build_with_ld_library_path_is_left_to_torch(tmp_path: Path) -> None:
    code = (
        "from ui.preload import preload_torch_libraries as p; t = p(); "
        "print(t, 'libtorch_cpu.so' in open('/proc/self/maps').read())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LD_LIBRARY_PATH": str(tmp_path)}
    env.pop(preload.DISABLE_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.0", "False"]
