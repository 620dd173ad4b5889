"""Report benchmark: time and size of `report` for a generated 2,000-image session.

Run: `PYTHONPATH=. python benchmarks/bench_report.py [--images 2000] [--reviewed 0.6]`.
Generates NEU-like images, a session on the demo model with random verdicts (each with the
map it was given on), then times `main.py report` as a user runs it (subprocesses, model load
included): text only (`--no-images`), with the gallery's overlays drawn again (capped at
GALLERY_LIMIT cards), the same uncapped, and with `--pdf`. Ratios are against the text-only
report measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine import report
from engine.cam import CamEngine
from engine.dataset import scan_images
from engine.demo_data import write_neu_det
from engine.profile import demo_profile_path, load_profile
from engine.session import Session, SessionContext, VerdictView

ROOT = Path(__file__).resolve().parents[1]
VIEWS = (VerdictView("layer3", "gradcam"), VerdictView("layer3", "gradcam++"))


def make_session(folder: Path, path: Path, reviewed: float, seed: int) -> int:
    """A session on the demo model with a verdict on `reviewed` of the images; returns how many
    of them the gallery lists (codes 2-4)."""
    profile = load_profile(demo_profile_path())
    engine = CamEngine.from_profile(profile, "cpu")
    records = scan_images(folder, profile.classes)
    context = SessionContext(
        folder, demo_profile_path(), engine.load_info.weights_sha256 or "", "layer3", "gradcam"
    )
    rng = random.Random(seed)
    marked = 0
    with Session.open(path, context, "bench") as session:
        session.add_images(r.rel_path.as_posix() for r in records)
        for record in records:
            rel = record.rel_path.as_posix()
            session.record_result(
                rel, rng.choice(profile.classes), rng.random(), record.ground_truth
            )
            if rng.random() < reviewed:
                code = rng.randint(1, 4)
                marked += code > 1
                session.set_verdict(rel, code, view=rng.choice(VIEWS))
    return marked


def timed_report(session: Path, out: Path, *extra: str) -> float:
    command = [sys.executable, str(ROOT / "main.py"), "report", str(session), "--output", str(out)]
    start = time.perf_counter()
    subprocess.run([*command, "--device", "cpu", *extra], check=True, cwd=ROOT)
    return time.perf_counter() - start


def time_uncapped(session: Path, out: Path, marked: int) -> float:
    """The report with every marked image in the gallery, in this process (model load not
    counted): what the cap saves."""
    from engine.report import ReportData
    from engine.report_images import write_model_report

    engine = CamEngine.from_profile(load_profile(demo_profile_path()), "cpu")
    with Session.open_existing(session) as opened:
        data = ReportData.read(opened)
    report.GALLERY_LIMIT = marked
    start = time.perf_counter()
    write_model_report(data, out, engine, "demo")
    return time.perf_counter() - start


def mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--reviewed", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_neu_det(root / "images", args.images, args.seed)
        marked = make_session(root / "images", root / "s.sqlite", args.reviewed, args.seed)
        made = time.perf_counter() - start
        print(f"{args.images} images, {marked} marked 2-4, made in {made:.0f} s")
        rows = []
        text = timed_report(root / "s.sqlite", root / "text", "--no-images")
        rows.append(("text only (--no-images)", text, mb(root / "text" / "report.html"), 0))
        capped = timed_report(root / "s.sqlite", root / "capped")
        shown = min(marked, report.GALLERY_LIMIT)
        rows.append(
            ("overlays, gallery capped", capped, mb(root / "capped" / "report.html"), shown)
        )
        pdf = timed_report(root / "s.sqlite", root / "pdf", "--pdf")
        rows.append(("overlays + report.pdf", pdf, mb(root / "pdf" / "report.pdf"), shown))
        uncapped = time_uncapped(root / "s.sqlite", root / "uncapped", marked)
        rows.append(
            (
                "overlays, uncapped (no load)",
                uncapped,
                mb(root / "uncapped" / "report.html"),
                marked,
            )
        )
        print(f"{'report':32} {'seconds':>8} {'x text':>7} {'MB':>6} {'overlays':>9}")
        for name, seconds, size, overlays in rows:
            print(f"{name:32} {seconds:8.1f} {seconds / text:7.2f} {size:6.2f} {overlays:9d}")
        per_card = (capped - text) / max(shown, 1)
        print(f"per overlay (capped - text) / overlays: {1000 * per_card:.0f} ms")


if __name__ == "__main__":
    main()
