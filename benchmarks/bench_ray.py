"""Ray batch benchmark: overhead against the local batch, scaling with actors, per-image costs.

Run: `PYTHONPATH=. python benchmarks/bench_ray.py [--images 500] [--rounds 2] [--device cpu]`.
The same images go through the local batch and through a local Ray (started once, its start
timed apart) with 1 and with 2 model actors, the contenders alternating round by round so a
busy machine slows all of them alike. Each run is end to end as a user starts it: model load,
every image decoded, explained, rendered, written, results.csv. Needs the ray extra.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ray
import torch

from engine.batch import BatchRunner, _load
from engine.batch_options import BatchOptions
from engine.cam import CamEngine
from engine.dataset import scan_images
from engine.demo_data import write_neu_det
from engine.export import encode_png
from engine.profile import demo_profile_path, load_profile
from engine.ray_batch import RayBatch, RayOptions, ship_model
from engine.render import DEFAULT_STYLE, render_heatmap, render_overlay


def _cpu_seconds() -> dict[int, float]:
    """CPU seconds used so far by this process and its descendants (the local Ray's workers),
    from /proc: on a machine shared with other jobs, wall time measures the scheduler's share,
    CPU time the work itself."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    ours = {os.getpid()}
    grown = True
    while grown:
        more = {pid for pid, ppid in parent.items() if ppid in ours} - ours
        ours |= more
        grown = bool(more)
    return {pid: used[pid] for pid in ours}


class CpuMeter:
    """CPU seconds of a run: sampled at every progress call, so workers Ray stops after the
    last image are counted up to then."""

    def __init__(self) -> None:
        self.start = _cpu_seconds()
        self.seconds = 0.0

    def __call__(self, *_progress: int) -> None:
        now = _cpu_seconds()
        self.seconds = sum(v - self.start.get(pid, 0.0) for pid, v in now.items())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_image_costs(engine: CamEngine, records: list, batch: int) -> None:
    """Milliseconds per image of each step, and the bytes one image moves between stages."""
    sample = records[: batch * 4]
    loaded = []
    decode = timed(lambda: loaded.extend(_load(r) for r in sample)) / len(sample)
    images = [item.image for item in loaded]
    engine.explain(images[:batch], "gradcam")  # warm-up
    results = []

    def model() -> None:
        for first in range(0, len(images), batch):
            results.extend(engine.explain(images[first : first + batch], "gradcam"))

    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    model_s = timed(model) / len(images)
    pairs = list(zip(images, results, strict=True))
    rendered = []
    render = timed(
        lambda: rendered.extend(
            (render_heatmap(r.cam, DEFAULT_STYLE.colormap), render_overlay(i, r.cam, DEFAULT_STYLE))
            for i, r in pairs
        )
    ) / len(pairs)
    encoded = []
    png = timed(lambda: encoded.extend(encode_png(a) + encode_png(b) for a, b in rendered)) / len(
        rendered
    )
    file_bytes = sum(len(p) for p in encoded) / len(encoded)
    decoded_bytes = sum(len(pickle.dumps(item)) for item in loaded) / len(loaded)
    result_bytes = sum(len(pickle.dumps(r)) for r in results) / len(results)
    source_bytes = sum(r.path.stat().st_size for r in sample) / len(sample)
    print(
        f"per image ({engine.device}, batch {batch}): decode {decode * 1e3:.2f} ms, model pass "
        f"{model_s * 1e3:.2f} ms, render {render * 1e3:.2f} ms, PNG encode {png * 1e3:.2f} ms; "
        f"bytes: source {source_bytes / 1e3:.1f} kB, decoded {decoded_bytes / 1e3:.1f} kB, "
        f"result {result_bytes / 1e3:.1f} kB, written PNGs {file_bytes / 1e3:.1f} kB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    write_neu_det(work / "in", args.images, seed=7)
    profile = load_profile(demo_profile_path())
    records = scan_images(work / "in" / "IMAGES", profile.classes)

    def options(name: str) -> BatchOptions:
        output = work / name
        shutil.rmtree(output, ignore_errors=True)
        return BatchOptions(output=output, method=profile.cam.method, batch_size=args.batch_size)

    cpu: dict[str, list[float]] = {}

    def local() -> None:
        meter = CpuMeter()
        engine = CamEngine.from_profile(profile, args.device)
        BatchRunner(engine, options("local")).run(records, progress=meter)
        cpu.setdefault("local", []).append(meter.seconds)

    shipment = ship_model(profile, args.device, False)
    layer = BatchRunner(CamEngine.from_profile(profile, "cpu"), options("probe")).layer

    def on_ray(actors: int) -> Callable[[], None]:
        def run() -> None:
            meter = CpuMeter()
            batch = RayBatch(shipment, options(f"ray{actors}"), layer, RayOptions(actors))
            batch.run(records, progress=meter)
            cpu.setdefault(f"ray x{actors}", []).append(meter.seconds)

        return run

    start = time.perf_counter()
    ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    print(f"{len(records)} images; ray.init {time.perf_counter() - start:.1f} s (not counted)")
    print(f"cluster: {ray.cluster_resources()}")
    per_image_costs(CamEngine.from_profile(profile, args.device), records, args.batch_size)
    contenders = {"local": local} | {f"ray x{n}": on_ray(n) for n in args.actors}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(args.rounds):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
            line = f"round {round_ + 1} {name}: {times[name][-1]:.1f} s, CPU {cpu[name][-1]:.1f} s"
            print(line, flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    for name, seconds in median.items():
        per_image = cpu_median[name] / len(records) * 1e3
        print(
            f"{name}: {seconds:.1f} s, {len(records) / seconds:.1f} img/s, "
            f"CPU {cpu_median[name]:.1f} s = {per_image:.0f} ms per image"
        )
    first = f"ray x{args.actors[0]}"
    print(f"overhead {first} / local = {median[first] / median['local']:.2f} (target <= 1.3)")
    print(f"CPU {first} / local = {cpu_median[first] / cpu_median['local']:.2f}")
    for n in args.actors[1:]:
        speedup = median[first] / median[f"ray x{n}"]
        print(f"scaling {first} -> ray x{n}: {speedup:.2f}x faster")
    ray.shutdown()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
