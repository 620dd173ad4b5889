"""Loads torch's large shared libraries with the GIL released, before the worker imports torch.

`import torch` in the worker thread froze the window for 0.4-0.7 s: Python's import of the
torch._C extension dlopens libtorch_cpu (and libtorch_cuda in a CUDA build), whose static
initialisers run for hundreds of milliseconds while the import holds the GIL. Calling libc's
dlopen through ctypes releases the GIL for the call, so the GUI thread keeps painting while
the same libraries load; the later import finds them loaded. Only libraries with no Python in
them are loaded here (never libtorch_python, whose initialisers may need the GIL), in the modes
torch itself uses. Linux only (Windows imports torch before Qt, see main.py). Any failure just
leaves the work to `import torch`, which reports its own errors. GCI_NO_TORCH_PRELOAD=1 turns it
off.

A CUDA build with LD_LIBRARY_PATH set is left to torch: there torch front-loads its CUDA wheels
(cublasLt before cublas, nvJitLink, ...) before libtorch_cpu, because libraries that carry a
RUNPATH would otherwise take a mismatched copy from LD_LIBRARY_PATH. Without LD_LIBRARY_PATH the
RPATH of libtorch_cpu/libtorch_cuda (searched first) finds the wheel's copies either way.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

DISABLE_ENV = "GCI_NO_TORCH_PRELOAD"


def _libraries() -> tuple[tuple[str, int], ...]:
    """(file, dlopen mode), in load order. A function: os.RTLD_* do not exist on Windows."""
    now, local = os.RTLD_NOW, os.RTLD_LOCAL
    return (
        # torch/__init__.py loads this one RTLD_GLOBAL itself.
        ("libtorch_global_deps.so", now | os.RTLD_GLOBAL),
        # Dependencies of the torch._C extension, which Python opens RTLD_NOW | RTLD_LOCAL.
        ("libtorch_cpu.so", now | local),
        ("libtorch_cuda.so", now | local),  # absent from CPU-only builds
        ("libtorch.so", now | local),
    )


def _startup_ld_library_path() -> str:
    """LD_LIBRARY_PATH as the process started with it: the only value the loader uses.

    os.environ may differ (importing cv2 sets it, to no effect on this process's loader).
    """
    try:
        environ = Path("/proc/self/environ").read_bytes()
    except OSError:
        return os.environ.get("LD_LIBRARY_PATH", "")
    for entry in environ.split(b"\0"):
        if entry.startswith(b"LD_LIBRARY_PATH="):
            return os.fsdecode(entry.partition(b"=")[2])
    return ""


def torch_library_dir() -> Path | None:
    """torch/lib, found without importing torch (a frozen bundle keeps it under _MEIPASS)."""
    candidates = []
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        candidates.append(Path(frozen_root) / "torch" / "lib")
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "lib")
    return next((c for c in candidates if (c / "libtorch_cpu.so").is_file()), None)


def preload_torch_libraries() -> float:
    """Load what `import torch` would dlopen first; returns the seconds spent (0 if skipped)."""
    if (
        not sys.platform.startswith("linux")
        or "torch" in sys.modules
        or os.environ.get(DISABLE_ENV)
    ):
        return 0.0
    folder = torch_library_dir()
    if folder is None:
        return 0.0
    if (folder / "libtorch_cuda.so").is_file() and _startup_ld_library_path():
        log.info("torch preload skipped: a CUDA build with LD_LIBRARY_PATH set")
        return 0.0
    start = time.perf_counter()
    libc = ctypes.CDLL(None)  # a CDLL's foreign calls release the GIL (a PyDLL's would not)
    dlopen = libc.dlopen
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    dlopen.restype = ctypes.c_void_p
    for name, mode in _libraries():
        path = folder / name
        if path.is_file() and not dlopen(os.fsencode(path), mode):
            log.info("torch preload stopped at %s; import torch will load it", name)
            break
    seconds = time.perf_counter() - start
    log.info("torch libraries preloaded in %.2f s", seconds)
    return seconds
