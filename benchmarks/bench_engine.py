"""Engine benchmark: Grad-CAM cost against inference, throughput against pytorch-grad-cam, Captum.

Run: `python benchmarks/bench_engine.py [--device cpu] [--images 32] [--memory-images 2000]`.
Every figure is a ratio of timings taken in this one run, interleaved, so a busy machine slows
all contenders alike. Needs the test extras (grad-cam, captum).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision

from engine.cam import CamEngine, TargetSpec, normalize_maps, upsample_map
from engine.methods.gradient import gradcam
from engine.methods.registry import DEFAULT_METHOD, MethodInputs
from engine.profile import CamDefaults, OutputSpec, PreprocessSpec
from engine.render import render_heatmap, render_overlay

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, repeats: int) -> dict:
    """Median seconds per contender, measured in alternating rounds after one warm-up each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(median_time(fn, repeats))
    return {name: statistics.median(values) for name, values in times.items()}


def single_cam_vs_inference(engine: CamEngine, image: np.ndarray, rounds: int) -> None:
    model = engine.model

    def inference() -> None:
        with torch.inference_mode():
            model(engine.prepare([image]))
        if engine.device.type == "cuda":
            torch.cuda.synchronize()

    def gradcam() -> None:
        engine.explain([image], "gradcam", "layer4")

    t = interleaved({"inference": inference, "gradcam": gradcam}, rounds, 5)
    ratio = t["gradcam"] / t["inference"]
    print(
        f"single image: inference {t['inference'] * 1e3:.1f} ms, Grad-CAM "
        f"{t['gradcam'] * 1e3:.1f} ms -> Grad-CAM / inference = {ratio:.3f} (target <= 1.15)"
    )


def per_chunk(contenders: dict[str, Callable[[int], object]], chunks: int, rounds: int) -> dict:
    """Total seconds per contender; each chunk is run by every contender in turn, the order
    rotating, so drifts in machine speed (shared VMs) hit all contenders alike."""
    for fn in contenders.values():
        fn(0)
    names = list(contenders)
    total = dict.fromkeys(names, 0.0)
    for r in range(rounds):
        for c in range(chunks):
            shift = (r * chunks + c) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                contenders[name](c)
                total[name] += time.perf_counter() - start
    return total


def report(title: str, total: dict, images: int) -> None:
    for name, seconds in total.items():
        print(f"{title} {name:17s}: {images / seconds:6.1f} images/s")
    ours = total["ours"]
    pgc, captum = total["pytorch-grad-cam"] / ours, total["captum"] / ours
    print(f"{title} ours / pytorch-grad-cam = {pgc:.2f}x (target >= 3)")
    print(f"{title} ours / captum           = {captum:.2f}x (target >= 1)")


def throughput(engine: CamEngine, images: list[np.ndarray], batch: int, rounds: int) -> None:
    """Files in, heatmap and overlay PNGs out, for ours and the two peers, same images; then
    the same three on tensors alone (model work only, no files)."""
    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from engine.batch import BatchRunner
    from engine.batch_options import BatchOptions
    from engine.dataset import scan_images

    model = engine.model
    layer = model.layer4
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    (work / "in").mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(work / "in" / f"img_{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    records = scan_images(work / "in", ())
    chunks = [records[i : i + batch] for i in range(0, len(records), batch)]
    runner = BatchRunner(engine, BatchOptions(output=work / "ours", batch_size=batch))
    explainer = LayerGradCam(model, layer)

    def read(c: int) -> list[np.ndarray]:
        return [cv2.cvtColor(cv2.imread(str(r.path)), cv2.COLOR_BGR2RGB) for r in chunks[c]]

    # Captum needs the target class before its pass; it gets the predictions for free
    # (computed here, outside the timing), which favours it.
    with torch.no_grad():
        predicted = [model(engine.prepare(read(c))).argmax(dim=1) for c in range(len(chunks))]

    def ours(c: int) -> None:
        runner.run(chunks[c])

    def grad_cam(tensor: torch.Tensor) -> np.ndarray:
        # Its hooks stay on the layer while the object lives: scope them to its own runs.
        with GradCAM(model=model, target_layers=[layer]) as cam:
            return cam(input_tensor=tensor, targets=None)

    def pytorch_grad_cam(c: int) -> None:
        rgbs = read(c)
        maps = grad_cam(engine.prepare(rgbs))
        for record, rgb, grayscale in zip(chunks[c], rgbs, maps, strict=True):
            visual = show_cam_on_image(np.float32(rgb) / 255, grayscale, use_rgb=True)
            heat = cv2.applyColorMap(np.uint8(255 * grayscale), cv2.COLORMAP_JET)
            cv2.imwrite(str(work / f"pgc_{record.path.stem}_heatmap.png"), heat)
            overlay = cv2.cvtColor(visual, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(work / f"pgc_{record.path.stem}_overlay.png"), overlay)

    def captum(c: int) -> None:
        rgbs = read(c)
        tensor = engine.prepare(rgbs)
        attr = explainer.attribute(tensor, target=predicted[c], relu_attributions=True)
        up = LayerAttribution.interpolate(attr, tuple(tensor.shape[-2:]), "bilinear")
        maps = up[:, 0].detach().cpu().numpy()
        for record, rgb, cam in zip(chunks[c], rgbs, maps, strict=True):
            cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-7)
            stem = work / f"captum_{record.path.stem}"
            heat = cv2.cvtColor(render_heatmap(cam, "jet"), cv2.COLOR_RGB2BGR)
            cv2.imwrite(f"{stem}_heatmap.png", heat)
            cv2.imwrite(
                f"{stem}_overlay.png", cv2.cvtColor(render_overlay(rgb, cam), cv2.COLOR_RGB2BGR)
            )

    files = {"ours": ours, "pytorch-grad-cam": pytorch_grad_cam, "captum": captum}
    report("files", per_chunk(files, len(chunks), rounds), len(images) * rounds)

    tensors = [engine.prepare(read(c)) for c in range(len(chunks))]

    def ours_maps(c: int) -> list[np.ndarray]:
        captured = engine.run_pass(tensors[c], ["layer4"], TargetSpec("pred"))
        raw = gradcam(MethodInputs(captured.activations["layer4"], captured.gradients["layer4"]))
        maps = normalize_maps(raw.clamp(min=0)).cpu().numpy()
        return [upsample_map(m, (224, 224)) for m in maps]

    compute = {
        "ours": ours_maps,
        "pytorch-grad-cam": lambda c: grad_cam(tensors[c]),
        "captum": lambda c: explainer.attribute(
            tensors[c], target=predicted[c], relu_attributions=True
        ),
    }
    report("model", per_chunk(compute, len(chunks), rounds), len(images) * rounds)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def memory_over_batch(count: int, device: str) -> None:
    """Run the real batch export over `count` generated images, sampling resident memory."""
    from engine.batch import BatchRunner
    from engine.batch_options import BatchOptions
    from engine.dataset import scan_images
    from engine.demo_data import write_neu_det
    from engine.profile import demo_profile_path, load_profile

    work = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    write_neu_det(work / "in", count, seed=7)
    profile = load_profile(demo_profile_path())
    engine = CamEngine.from_profile(profile, device)
    records = scan_images(work / "in", profile.classes)
    samples: list[tuple[int, float]] = []

    def progress(done: int, total: int, failed: int) -> None:
        if not samples or done - samples[-1][0] >= total // 10 or done == total:
            samples.append((done, rss_mb()))

    runner = BatchRunner(engine, BatchOptions(output=work / "out", batch_size=16))
    summary = runner.run(records, progress=progress)
    curve = ", ".join(f"{done}: {mb:.0f} MB" for done, mb in samples)
    growth = samples[-1][1] - samples[1][1] if len(samples) > 1 else 0.0
    print(
        f"batch export of {count} images (demo model): {count / summary.seconds:.1f} images/s; "
        f"RSS {curve}; growth after the first tenth {growth:+.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-images", type=int, default=0, help="0 skips the memory run")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    preprocess = PreprocessSpec((224, 224), MEAN, STD, "replicate")
    cam = CamDefaults(None, DEFAULT_METHOD, "jet", 0.5)
    classes = [str(i) for i in range(1000)]
    engine = CamEngine(model, classes, preprocess, cam, OutputSpec(), args.device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(args.images)]
    print(
        f"ResNet50 224x224 on {engine.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    single_cam_vs_inference(engine, images[0], args.rounds)
    throughput(engine, images, args.batch_size, args.rounds)
    if args.memory_images:
        memory_over_batch(args.memory_images, args.device)


if __name__ == "__main__":
    main()
