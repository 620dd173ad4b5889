"""GUI benchmark: start-up, live re-rendering, GUI-thread stalls and going back, against targets.

Run: `QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py` (or under Xvfb, without the
variable). It measures and prints, never asserts:

1. time to window: `python main.py`'s code path in a subprocess, from the launch to the first
   expose of the main window, against `python -c "import torch, torchvision"` (target < 0.5 x);
2. opacity and colormap changes on a 1024x1024 image, each timed until the view has painted
   (target <= 16 ms);
3. the longest gap between 5 ms GUI-thread timer ticks during a folder export (target <= 50 ms);
4. going back to an image already computed, until its overlay is painted (target <= 50 ms);
5. the gallery on 2,000 cached thumbnails: the first screen's time, and the longest GUI-thread
   gap while scrolling it page by page to the end (target <= 50 ms).

Settings live in a temporary folder (HOME and XDG_CONFIG_HOME point there), never the user's.
Options: --quick for a short run; see --help.

`--frozen dist/gradcam-inspector/gradcam-inspector` also times the PyInstaller bundle's start
against `python main.py` in the same run: both launched with GCI_EXIT_AFTER_SHOW=1 (main.py then
prints `GCI_WINDOW_SHOWN epoch=...` at the window's first expose and exits), interleaved, timed
from the launch to that epoch. `--startup-only` stops after the start-up measurements.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WINDOW_TARGET_RATIO = 0.5
RERENDER_TARGET_MS = 16.0
STALL_TARGET_MS = 50.0
RETURN_TARGET_MS = 50.0
PROBE_INTERVAL_MS = 5
RESULT_TIMEOUT_S = 180.0

# Runs main.main([]) (no arguments: the window on the bundled demo) with an application-wide
# event filter that prints the wall-clock time of the main window's first expose, then leaves
# at once: the model load in the worker cannot be interrupted, and waiting for it would only
# slow the next run.
WINDOW_SNIPPET = r"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QWindow
from PySide6.QtWidgets import QApplication

class FirstExpose(QObject):
    def eventFilter(self, obj, event):
        if (event.type() == QEvent.Type.Expose and isinstance(obj, QWindow)
                and obj.isExposed() and "Grad-CAM Inspector" in obj.title()):
            sys.stdout.write(f"EXPOSED {time.time():.6f}\n")
            sys.stdout.flush()
            os._exit(0)
        return False

app = QApplication(sys.argv[:1])
watcher = FirstExpose()
app.installEventFilter(watcher)
import main
main.main([])
"""

TORCH_SNIPPET = "import torch, torchvision"


# -- helpers ------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def isolated_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Row:
    def __init__(self, name: str, value: str, target: str, ok: bool | None) -> None:
        self.name, self.value, self.target = name, value, target
        self.verdict = "n/a" if ok is None else ("meets" if ok else "MISSES")


ROWS: list[Row] = []
_MESSAGE_HANDLER: Callable | None = None


def say(text: str = "") -> None:
    print(text, flush=True)


# -- 1. time to window --------------------------------------------------------------------------
def time_window_once(env: dict[str, str], timeout: float) -> float | None:
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-c", WINDOW_SNIPPET],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        say(f"  window run timed out after {timeout:.0f} s")
        return None
    for line in out.splitlines():
        if line.startswith("EXPOSED "):
            return float(line.split()[1]) - start
    say(f"  window run gave no expose (rc {proc.returncode}): {err.strip()[-400:]}")
    return None


def time_torch_once(env: dict[str, str], timeout: float) -> float | None:
    start = time.time()
    try:
        done = subprocess.run(
            [sys.executable, "-c", TORCH_SNIPPET],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        say(f"  torch import timed out after {timeout:.0f} s")
        return None
    if done.returncode != 0:
        say(f"  torch import failed: {done.stderr.strip()[-400:]}")
        return None
    return time.time() - start


Timer = Callable[[], float | None]


def interleaved(
    first: tuple[str, Timer], second: tuple[str, Timer], runs: int
) -> tuple[list[float], list[float]]:
    """Times two start-ups alternately, after one unmeasured run of each (a warm file cache for
    both); returns the successful times of each, in run order."""
    (first_name, time_first), (second_name, time_second) = first, second
    time_first()
    time_second()
    firsts: list[float] = []
    seconds: list[float] = []
    for i in range(runs):
        a, b = time_first(), time_second()
        say(
            f"  run {i + 1}: {first_name} {a if a is None else f'{a:.3f}'} s, "
            f"{second_name} {b if b is None else f'{b:.3f}'} s"
        )
        firsts += [a] if a is not None else []
        seconds += [b] if b is not None else []
    return firsts, seconds


def bench_time_to_window(home: Path, runs: int) -> None:
    say(f"[1] time to window: {runs} interleaved runs of the window and of the torch import")
    env = isolated_env(home)
    windows, torches = interleaved(
        ("window", lambda: time_window_once(env, 120)),
        ("import torch, torchvision", lambda: time_torch_once(env, 120)),
        runs,
    )
    if not windows or not torches:
        ROWS.append(
            Row("time to window / torch import", "failed", f"< {WINDOW_TARGET_RATIO}x", None)
        )
        return
    w, t = statistics.median(windows), statistics.median(torches)
    ratio = w / t
    say(f"  median: window {w:.3f} s, torch import {t:.3f} s, ratio {ratio:.2f}")
    ROWS.append(Row("window shown (median, s)", f"{w:.3f}", "-", None))
    ROWS.append(Row("import torch, torchvision (median, s)", f"{t:.3f}", "-", None))
    ROWS.append(
        Row(
            "time to window / torch import",
            f"{ratio:.2f}x",
            f"< {WINDOW_TARGET_RATIO}x",
            ratio < WINDOW_TARGET_RATIO,
        )
    )


# -- 1b. time to window of the frozen bundle ----------------------------------------------------
def time_shown_once(command: list[str], env: dict[str, str], timeout: float) -> float | None:
    """Launch to the GCI_WINDOW_SHOWN line that main.py prints under GCI_EXIT_AFTER_SHOW=1."""
    start = time.time()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={**env, "GCI_EXIT_AFTER_SHOW": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        say(f"  {Path(command[-1]).name} timed out after {timeout:.0f} s")
        return None
    for line in done.stdout.splitlines():
        if line.startswith("GCI_WINDOW_SHOWN "):
            fields = dict(field.split("=", 1) for field in line.split()[1:])
            return float(fields["epoch"]) - start
    say(f"  no GCI_WINDOW_SHOWN line (rc {done.returncode}): {done.stderr.strip()[-400:]}")
    return None


def bench_frozen_window(home: Path, runs: int, frozen: Path) -> None:
    say(f"[1b] time to window: {runs} interleaved runs of python main.py and of {frozen}")
    env = isolated_env(home)
    source_cmd = [sys.executable, str(ROOT / "main.py")]
    frozen_cmd = [str(frozen)]
    sources, bundles = interleaved(
        ("python main.py", lambda: time_shown_once(source_cmd, env, 180)),
        ("frozen", lambda: time_shown_once(frozen_cmd, env, 180)),
        runs,
    )
    if not sources or not bundles:
        ROWS.append(Row("frozen / source time to window", "failed", "-", None))
        return
    s, b = statistics.median(sources), statistics.median(bundles)
    say(f"  median: python main.py {s:.3f} s, frozen {b:.3f} s, ratio {b / s:.2f}")
    ROWS.append(Row("window shown, python main.py (median, s)", f"{s:.3f}", "-", None))
    ROWS.append(Row("window shown, frozen bundle (median, s)", f"{b:.3f}", "-", None))
    ROWS.append(Row("frozen / source time to window", f"{b / s:.2f}x", "-", None))


def print_rows() -> None:
    say("")
    name_w = max(len(r.name) for r in ROWS) if ROWS else 10
    say(f"{'measure':<{name_w}}  {'value':>10}  {'target':>9}  verdict")
    say("-" * (name_w + 34))
    for r in ROWS:
        say(f"{r.name:<{name_w}}  {r.value:>10}  {r.target:>9}  {r.verdict}")


# -- in-process window --------------------------------------------------------------------------
class PaintWatch:
    """Counts paint events of one widget (the view's viewport) through an event filter."""

    def __init__(self, widget) -> None:
        from PySide6.QtCore import QEvent, QObject

        class _Filter(QObject):
            def __init__(self, owner: PaintWatch) -> None:
                super().__init__()
                self.owner = owner

            def eventFilter(self, obj, event) -> bool:
                if event.type() == QEvent.Type.Paint:
                    self.owner.count += 1
                    self.owner.last = time.perf_counter()
                return False

        self.count = 0
        self.last = 0.0
        self.filter = _Filter(self)
        widget.installEventFilter(self.filter)


def spin_until(app, cond: Callable[[], bool], timeout_s: float) -> bool:
    """Run the event loop until cond() holds; False on timeout."""
    from PySide6.QtCore import QEventLoop

    deadline = time.perf_counter() + timeout_s
    while not cond():
        if time.perf_counter() > deadline:
            return False
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        if not cond():
            time.sleep(0.001)
    return True


def painted_after(app, watch: PaintWatch, before: int, timeout_s: float = 1.0) -> bool:
    """Process events until the watched widget has painted again (no sleeping: tight loop)."""
    deadline = time.perf_counter() + timeout_s
    while watch.count == before:
        if time.perf_counter() > deadline:
            return False
        app.processEvents()
    return True


def open_window(app, settings_file: Path, folder: Path):
    from PySide6.QtCore import QSettings

    from ui.main_window import MainWindow

    settings = QSettings(str(settings_file), QSettings.Format.IniFormat)
    window = MainWindow(settings, folder, None, device="cpu", prefetch=True)
    app.aboutToQuit.connect(window.shutdown)
    window.resize(1400, 860)
    results: list = []
    errors: list = []
    window.sig_result.connect(results.append)
    window.sig_error.connect(errors.append)
    window.show()
    spin_until(
        app, lambda: window.windowHandle() is not None and window.windowHandle().isExposed(), 10
    )
    # Not a target of its own: how long the GUI thread stalls while the worker imports torch.
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    gaps: list[float] = []
    ends: list[float] = []
    last = [time.perf_counter()]
    marks: dict[str, float] = {}

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(1000 * (now - last[0]))
        ends.append(now)
        last[0] = now

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_INTERVAL_MS)
    probe.timeout.connect(tick)
    window.sig_model_ready.connect(lambda _: marks.setdefault("model ready", time.perf_counter()))
    window.sig_result.connect(lambda _: marks.setdefault("first result", time.perf_counter()))
    loop = QEventLoop()
    window.sig_result.connect(loop.quit)
    window.sig_error.connect(loop.quit)
    QTimer.singleShot(int(RESULT_TIMEOUT_S * 1000), loop.quit)
    last[0] = time.perf_counter()
    probe.start()
    window.start()
    if not (results or errors):
        loop.exec()
    probe.stop()
    window.sig_result.disconnect(loop.quit)
    window.sig_error.disconnect(loop.quit)
    if not (results or errors):
        raise RuntimeError("no first result from the window within the timeout")
    if gaps:
        worst, p99 = max(gaps), percentile(gaps, 99)
        say(
            f"  GUI gaps while the model loads (torch import in the worker): {len(gaps)} ticks, "
            f"p99 {p99:.1f} ms, max {worst:.1f} ms"
        )
        t0 = ends[0] - gaps[0] / 1000
        worst3 = sorted(range(len(gaps)), key=gaps.__getitem__)[-3:][::-1]
        where = ", ".join(
            f"{gaps[i]:.0f} ms ending at +{1000 * (ends[i] - t0):.0f} ms" for i in worst3
        )
        seen = ", ".join(f"{k} at +{1000 * (v - t0):.0f} ms" for k, v in marks.items())
        say(f"  longest gaps: {where}; {seen} (times from window.start())")
        ROWS.append(Row("GUI gap during model load, max (info)", f"{worst:.1f} ms", "-", None))
    if errors and not results:
        raise RuntimeError(f"the window reported an error: {errors[0].message}")
    return window, results, errors


# -- 2. opacity and colormap on a 1024x1024 image -----------------------------------------------
def bench_rerender(app, window, changes: int) -> None:
    import cv2
    import numpy as np
    from PySide6.QtWidgets import QApplication

    say(f"[2] opacity and colormap changes on a 1024x1024 image, {changes} each")
    done = window.explain.last_explained
    image = cv2.resize(done.image, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    cam = cv2.resize(
        done.result.cam.astype(np.float32), (1024, 1024), interpolation=cv2.INTER_LINEAR
    )
    cam = np.clip(cam, 0.0, 1.0)
    window.state.update(mode="overlay", threshold=0.0)
    window.view.set_content(image, cam, (), window.state.options, "1024x1024 benchmark")
    window.view.fit()
    viewport = window.view.graphics.viewport()
    watch = PaintWatch(viewport)
    before = watch.count
    painted = painted_after(app, watch, before, 2.0)
    use_grab = not painted
    if use_grab:
        say("  no paint event seen from the event loop: timing with view.grab() instead")

    def timed(change: Callable[[], None]) -> tuple[float, float]:
        """(until painted, until the signal handlers returned), in ms."""
        before = watch.count
        start = time.perf_counter()
        change()
        mid = time.perf_counter()
        if use_grab:
            window.view.grab()
            end = time.perf_counter()
        else:
            ok = painted_after(app, watch, before, 1.0)
            end = watch.last if ok else time.perf_counter()
        return 1000 * (end - start), 1000 * (mid - start)

    n_maps = window.view_toolbar.colormap.count()
    samples: dict[str, tuple[list[float], list[float]]] = {
        "opacity": ([], []),
        "colormap": ([], []),
    }
    changes_by_name = {
        # 20, 81, 22, 83, ...: every step is a new value.
        "opacity": lambda i: window.view_toolbar.opacity.setValue((20, 80)[i % 2] + i % 7),
        "colormap": lambda i: window.view_toolbar.colormap.setCurrentIndex(
            (window.view_toolbar.colormap.currentIndex() + 1) % n_maps
        ),
    }
    # Interleaved, so a busy moment of the (shared) machine hits both alike; 3 warm-up rounds.
    for i in range(changes + 3):
        for name, change in changes_by_name.items():
            total, compute = timed(lambda change=change, i=i: change(i))
            if i >= 3:
                samples[name][0].append(total)
                samples[name][1].append(compute)
    QApplication.processEvents()
    opacity_total, opacity_compute = samples["opacity"]
    colormap_total, colormap_compute = samples["colormap"]
    how = "grab" if use_grab else "paint"
    for name, total, compute in (
        ("opacity", opacity_total, opacity_compute),
        ("colormap", colormap_total, colormap_compute),
    ):
        med, p95 = statistics.median(total), percentile(total, 95)
        say(
            f"  {name}: until painted median {med:.1f} ms, p95 {p95:.1f} ms,"
            f" max {max(total):.1f} ms; re-render alone (signal to setImage)"
            f" median {statistics.median(compute):.1f} ms"
        )
        ROWS.append(
            Row(
                f"{name} change 1024^2, median ({how})",
                f"{med:.1f} ms",
                f"<= {RERENDER_TARGET_MS:.0f} ms",
                med <= RERENDER_TARGET_MS,
            )
        )
        ROWS.append(
            Row(
                f"{name} change 1024^2, p95 ({how})",
                f"{p95:.1f} ms",
                f"<= {RERENDER_TARGET_MS:.0f} ms",
                p95 <= RERENDER_TARGET_MS,
            )
        )
    # Back to the real image so the rest of the run shows what the window computed.
    window.view.set_content(done.image, done.result.cam, done.boxes, window.state.options, "")
    window.view.fit()
    viewport.removeEventFilter(watch.filter)


# -- 4. going back to a computed image ----------------------------------------------------------
def bench_return(app, window, results: list, returns: int) -> None:
    say(f"[4] going back to an image already computed, {returns} times")
    watch = PaintWatch(window.view.graphics.viewport())
    rows = window.images.model.rowCount()

    def go(row: int) -> bool:
        window.images.select_row(row)
        record = window.images.current_record()
        return spin_until(
            app,
            lambda: (
                window.explain.last_explained is not None
                and window.explain.last_explained.record == record
            ),
            RESULT_TIMEOUT_S,
        )

    to_signal, to_paint = [], []
    for i in range(returns):
        k = (2 + 3 * i) % max(rows - 1, 1)
        if not (go(k) and go(k + 1)):
            say(f"  image {k} or {k + 1} gave no result in time; skipping")
            continue
        # Let the prefetches the worker started run out, as when someone looks at an image.
        spin_until(app, lambda: False, 0.3)
        before_results, before_paints = len(results), watch.count
        start = time.perf_counter()
        window.images.select_row(k)
        target = window.images.current_record()
        if not spin_until(
            app,
            lambda n=before_results, t=target: len(results) > n and results[-1].record == t,
            RESULT_TIMEOUT_S,
        ):
            say(f"  going back to image {k} gave no result in time")
            continue
        signalled = time.perf_counter()
        if painted_after(app, watch, before_paints, 2.0):
            painted = watch.last
        else:
            window.view.grab()
            painted = time.perf_counter()
        to_signal.append(1000 * (signalled - start))
        to_paint.append(1000 * (painted - start))
    window.view.graphics.viewport().removeEventFilter(watch.filter)
    if not to_paint:
        ROWS.append(
            Row("back to a computed image", "failed", f"<= {RETURN_TARGET_MS:.0f} ms", None)
        )
        return
    med, worst = statistics.median(to_paint), max(to_paint)
    say(
        f"  until shown (sig_result): median {statistics.median(to_signal):.1f} ms, "
        f"max {max(to_signal):.1f} ms; until painted: median {med:.1f} ms, max {worst:.1f} ms"
    )
    ROWS.append(
        Row(
            "back to a computed image, median",
            f"{med:.1f} ms",
            f"<= {RETURN_TARGET_MS:.0f} ms",
            med <= RETURN_TARGET_MS,
        )
    )
    ROWS.append(
        Row(
            "back to a computed image, max",
            f"{worst:.1f} ms",
            f"<= {RETURN_TARGET_MS:.0f} ms",
            worst <= RETURN_TARGET_MS,
        )
    )


# -- 3. GUI-thread stall during a folder export -------------------------------------------------
def bench_export_stall(app, window, output: Path, timeout_s: float) -> None:
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    count = len(window.images.visible_records())
    say(
        f"[3] GUI-thread gaps during a folder export of {count} images"
        f" (probe every {PROBE_INTERVAL_MS} ms)"
    )
    spin_until(app, lambda: False, 0.5)  # prefetches finish before the export starts
    gaps: list[float] = []
    last = [time.perf_counter()]
    finished: list = []
    failed: list = []
    progress: list = []

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(1000 * (now - last[0]))
        last[0] = now

    loop = QEventLoop()
    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_INTERVAL_MS)
    probe.timeout.connect(tick)
    window.sig_export_finished.connect(lambda f: (finished.append(f), loop.quit()))
    window.sig_export_progress.connect(progress.append)

    def on_error(err) -> None:
        if err.kind == "export":
            failed.append(err)
            loop.quit()

    window.sig_error.connect(on_error)
    guard = QTimer()
    guard.setSingleShot(True)
    cancelled_by_bench = [False]

    def give_up() -> None:
        cancelled_by_bench[0] = True
        window.exports.cancel()

    guard.timeout.connect(give_up)
    hard_stop = QTimer()
    hard_stop.setSingleShot(True)
    hard_stop.timeout.connect(loop.quit)

    last[0] = time.perf_counter()
    probe.start()
    start = time.perf_counter()
    job = window.export_folder(output, batch_size=4)
    if job is None:
        probe.stop()
        say("  the window refused to start the export")
        ROWS.append(
            Row("GUI gap during export, max", "failed", f"<= {STALL_TARGET_MS:.0f} ms", None)
        )
        return
    guard.start(int(timeout_s * 1000))
    hard_stop.start(int((timeout_s + 120) * 1000))
    loop.exec()
    probe.stop()
    elapsed = time.perf_counter() - start
    if failed:
        say(f"  export failed: {failed[0].message}")
    if finished:
        f = finished[0].summary
        note = " (cancelled by the benchmark's time limit)" if cancelled_by_bench[0] else ""
        say(
            f"  export: {f.succeeded + f.failed}/{f.total} images in {elapsed:.1f} s{note}, "
            f"{len(progress)} progress reports"
        )
    else:
        say(f"  no export end seen after {elapsed:.1f} s")
    if not gaps:
        ROWS.append(
            Row("GUI gap during export, max", "failed", f"<= {STALL_TARGET_MS:.0f} ms", None)
        )
        return
    worst, p99 = max(gaps), percentile(gaps, 99)
    over = sum(1 for g in gaps if g > STALL_TARGET_MS)
    say(
        f"  {len(gaps)} ticks: median gap {statistics.median(gaps):.1f} ms, p99 {p99:.1f} ms, "
        f"max {worst:.1f} ms, {over} gaps over {STALL_TARGET_MS:.0f} ms"
    )
    ROWS.append(Row("GUI gap during export, p99", f"{p99:.1f} ms", "-", None))
    ROWS.append(
        Row(
            "GUI gap during export, max",
            f"{worst:.1f} ms",
            f"<= {STALL_TARGET_MS:.0f} ms",
            worst <= STALL_TARGET_MS,
        )
    )


# -- 5. the gallery ------------------------------------------------------------------------------
def _gallery_on_disk(root: Path, count: int):
    """count records and their cached thumbnails, as a reopened folder has them."""
    import cv2
    import numpy as np

    from engine.dataset import ImageRecord
    from engine.render import RenderStyle
    from ui.gallery import GalleryKey, render_thumbnail, thumbnail_name

    key = GalleryKey(str(root / "folder"), "profile.toml", "layer4", "gradcam")
    directory = key.directory(root)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(count):
        name = f"img_{i:05d}.jpg"
        record = ImageRecord(root / "folder" / name, Path(name), None, None)
        image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
        cam = cv2.GaussianBlur(rng.random((200, 200)).astype(np.float32), (0, 0), 12)
        thumb = render_thumbnail(image, cam, RenderStyle())
        cv2.imwrite(str(directory / thumbnail_name(record)), cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR))
        records.append(record)
    return key, records


def bench_gallery(app, root: Path, count: int) -> None:
    from PySide6.QtCore import QPoint, Qt, QTimer

    from ui.gallery import GalleryCache, GalleryView
    from ui.images_dock import ImageTableModel

    say(f"[5] the gallery on {count} cached thumbnails (probe every {PROBE_INTERVAL_MS} ms)")
    key, records = _gallery_on_disk(root, count)
    model = ImageTableModel()
    model.set_records(records)
    view = GalleryView(model, GalleryCache(root))
    view.resize(1600, 1000)
    view.show()
    spin_until(app, lambda: False, 0.3)
    proxy, scroll = view.proxy, view.list.verticalScrollBar()

    def shown_have_icons() -> bool:
        """Every thumbnail in the viewport has its picture (asks for them, as painting does)."""
        viewport, grid = view.list.viewport().rect(), view.list.gridSize()
        index = view.list.indexAt(viewport.topLeft() + QPoint(grid.width(), grid.height()) / 2)
        if not index.isValid():
            return False
        row = index.row()
        while row < proxy.rowCount():
            index = proxy.index(row, 0)
            if not view.list.visualRect(index).intersects(viewport):
                break
            proxy.data(index, Qt.ItemDataRole.DecorationRole)  # asks for it, as painting does
            if view.cache.pixmap(proxy.record(index)) is None:
                return False
            row += 1
        return True

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(1000 * (now - last[0]))
        last[0] = now

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_INTERVAL_MS)
    probe.timeout.connect(tick)
    last[0] = start = time.perf_counter()
    probe.start()
    view.cache.set_key(key)  # the folder reopened: its thumbnails come from disk
    view.refresh()
    first_screen = spin_until(app, shown_have_icons, 30.0)
    shown_ms = 1000 * (time.perf_counter() - start)
    opening = max(gaps, default=0.0)  # the first screen's longest gap, apart from scrolling
    gaps.clear()
    pages = 0
    scroll_start = time.perf_counter()
    while scroll.value() < scroll.maximum():  # a page at a time, as fast as the user can press
        scroll.setValue(scroll.value() + scroll.pageStep())
        spin_until(app, lambda: False, 0.03)
        pages += 1
    spin_until(app, shown_have_icons, 30.0)
    scroll_s = time.perf_counter() - scroll_start
    probe.stop()
    view.cache.close()
    worst, p99 = max(gaps), percentile(gaps, 99)
    over = sum(1 for g in gaps if g > STALL_TARGET_MS)
    say(
        f"  first screen of thumbnails after {shown_ms:.0f} ms"
        f"{'' if first_screen else ' (timed out)'} (longest gap {opening:.1f} ms); "
        f"{pages} pages scrolled in {scroll_s:.1f} s, load average {os.getloadavg()[0]:.1f}"
    )
    say(
        f"  {len(gaps)} ticks: median gap {statistics.median(gaps):.1f} ms, p99 {p99:.1f} ms, "
        f"max {worst:.1f} ms, {over} gaps over {STALL_TARGET_MS:.0f} ms"
    )
    ROWS.append(Row(f"gallery of {count}: first screen shown", f"{shown_ms:.0f} ms", "-", None))
    ROWS.append(
        Row(
            "GUI gap scrolling the gallery, max",
            f"{worst:.1f} ms",
            f"<= {STALL_TARGET_MS:.0f} ms",
            worst <= STALL_TARGET_MS,
        )
    )


def install_message_filter() -> None:
    """Drop the offscreen plugin's 'propagateSizeHints' notice; every other message is printed."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode, _context, message: str) -> None:
        if "propagateSizeHints" not in message:
            sys.stderr.write(message + "\n")

    global _MESSAGE_HANDLER
    _MESSAGE_HANDLER = handler  # kept alive for the whole run
    qInstallMessageHandler(handler)


# -- driver -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="time-to-window runs (default 3)")
    parser.add_argument("--changes", type=int, default=50, help="opacity/colormap changes (50)")
    parser.add_argument("--images", type=int, default=200, help="generated images to export (200)")
    parser.add_argument("--returns", type=int, default=10, help="returns to a computed image (10)")
    parser.add_argument(
        "--export-timeout",
        type=float,
        default=180.0,
        help="cancel the export after this many seconds (180)",
    )
    parser.add_argument("--skip-startup", action="store_true", help="skip the time-to-window part")
    parser.add_argument(
        "--gallery", type=int, default=2000, help="cached thumbnails in the gallery (2000)"
    )
    parser.add_argument(
        "--gallery-only", action="store_true", help="only the gallery part (no model, no torch)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 start-up run, 20 changes, 40 images, 4 returns"
    )
    parser.add_argument(
        "--frozen", type=Path, help="also time this bundle executable's start against main.py"
    )
    parser.add_argument(
        "--startup-only", action="store_true", help="stop after the time-to-window parts"
    )
    args = parser.parse_args(argv)
    if args.gallery_only:
        args.skip_startup = True
    if args.quick:
        args.runs, args.changes, args.images, args.returns = 1, 20, 40, 4

    with tempfile.TemporaryDirectory(prefix="bench_gui_") as tmp:
        tmp_path = Path(tmp)
        home = tmp_path / "home"
        (home / ".config").mkdir(parents=True)
        # This process's QSettings, if any were made without a file, stay in the temp folder too.
        os.environ["HOME"] = str(home)
        os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
        say(
            f"platform: QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', '(default)')}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        if not args.skip_startup:
            bench_time_to_window(home, args.runs)
            if args.frozen is not None:
                bench_frozen_window(home, args.runs, args.frozen.resolve())
        if args.startup_only:
            print_rows()
            return 0

        from PySide6.QtCore import QCoreApplication
        from PySide6.QtWidgets import QApplication

        from engine.demo_data import write_neu_det

        QCoreApplication.setOrganizationName("gradcam-inspector-bench")
        QCoreApplication.setApplicationName("Grad-CAM Inspector benchmark")
        from ui.refcounts import guard_singletons

        app = QApplication.instance() or QApplication(sys.argv[:1])
        guard_singletons()  # as main.py does: see ui/refcounts.py
        install_message_filter()
        bench_gallery(app, tmp_path / "gallery", args.gallery)
        if args.gallery_only:
            print_rows()
            return 0
        folder = tmp_path / "neu"
        start = time.perf_counter()
        write_neu_det(folder, args.images, seed=1)
        say(f"generated {args.images} demo images in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        window, results, _errors = open_window(app, tmp_path / "settings.ini", folder)
        elapsed = time.perf_counter() - start
        say(f"window on the generated folder, first result after {elapsed:.1f} s")
        try:
            bench_rerender(app, window, args.changes)
            bench_return(app, window, results, args.returns)
            bench_export_stall(app, window, tmp_path / "export", args.export_timeout)
        finally:
            window.close()  # saves settings to the temp file and stops the worker thread
            if window.threads.thread.isRunning():
                say("warning: the worker thread still runs after close()")
            app.processEvents()

    print_rows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
