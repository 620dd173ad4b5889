"""Tests for engine/ray_batch.py on a local 2-CPU Ray: equal to the local batch, faults, resume."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import ray

import engine
from engine.batch_options import BatchOptions
from engine.cli import EXIT_SOME_FAILED, run
from engine.dataset import scan_images
from engine.demo_data import write_neu_det
from engine.file_lock import OUTPUT_LOCK_NAME
from engine.profile import load_profile
from engine.ray_batch import RayBatch, RayOptions, ship_model
from tests.conftest import NEU, csv_rows


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module (each start costs seconds on a shared machine)."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"py_modules": [engine]},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty NEU-DET images with annotations, and one file that is not an image."""
    folder = tmp_path_factory.mktemp("ray_in")
    write_neu_det(folder, 20, seed=5)
    (folder / "IMAGES" / "broken_1.jpg").write_bytes(b"not a jpeg")
    return folder


def _files(folder: Path) -> list[str]:
    """The run's outputs; the local folder's lock file is not one (a URI output has none)."""
    found = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(name for name in found if name != OUTPUT_LOCK_NAME)


def _batch_args(profile: Path, images: Path, output: Path) -> list[str]:
    return [
        "batch",
        "--profile",
        str(profile),
        "--input",
        str(images),
        "--output",
        str(output),
        "--batch-size",
        "4",
        "--save-raw",
        "--panels",
        "--boxes",
    ]


@pytest.fixture(scope="module")
def local_output(tiny_profile: Path, images: Path, tmp_path_factory) -> Path:
    """The local batch's output, the reference every Ray run is compared with."""
    output = tmp_path_factory.mktemp("local") / "out"
    assert run(_batch_args(tiny_profile, images, output)) == EXIT_SOME_FAILED
    return output


def _ray_batch(profile_path: Path, output: Path, resume: bool = False) -> RayBatch:
    profile = load_profile(profile_path)
    options = BatchOptions(output=output, method="gradcam", batch_size=4, save_raw=True)
    return RayBatch(ship_model(profile, "cpu", False), options, "layer4", RayOptions(1, resume))


@pytest.fixture(scope="module")
def plain_output(tiny_profile: Path, images: Path, tmp_path_factory) -> Path:
    """The local batch's output with _ray_batch's options."""
    output = tmp_path_factory.mktemp("plain") / "out"
    args = ["--profile", str(tiny_profile), "--input", str(images), "--output", str(output)]
    run(["batch", *args, "--batch-size", "4", "--save-raw"])
    return output


@pytest.fixture(scope="module")
def plain_rows(plain_output: Path) -> list[dict[str, str]]:
    return csv_rows(plain_output / "results.csv")


def test_ray_batch_equals_the_local_batch(
    local_ray: None, tiny_profile: Path, images: Path, local_output: Path, tmp_path: Path
) -> None:
    output = tmp_path / "ray"
    code = run([*_batch_args(tiny_profile, images, output), "--ray"])
    assert code == EXIT_SOME_FAILED  # the broken file, as in the local run
    rows = csv_rows(output / "results.csv")
    assert rows == csv_rows(local_output / "results.csv")
    assert [r["status"] for r in rows].count("error") == 1
    assert "not a decodable image" in next(r for r in rows if r["status"] == "error")["error"]
    assert _files(output) == _files(local_output)
    for name in _files(local_output):
        if name.endswith(".npy"):
            np.testing.assert_allclose(
                np.load(output / name), np.load(local_output / name), rtol=0, atol=1e-6
            )
        elif name.endswith(".png"):
            ours = cv2.imread(str(output / name), cv2.IMREAD_UNCHANGED)
            theirs = cv2.imread(str(local_output / name), cv2.IMREAD_UNCHANGED)
            assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1, name


def _explain_actors() -> list[dict]:
    return [
        actor
        for actor in ray._private.state.actors().values()
        if "ExplainActor" in actor["ActorClassName"]
    ]


def test_a_killed_actor_is_restarted_and_every_image_is_written_once(
    local_ray: None, tiny_profile: Path, images: Path, plain_rows: list, tmp_path: Path
) -> None:
    killed: list[int] = []

    def kill_the_actor_once(done: int, total: int, failed: int) -> None:
        if killed:
            return
        alive = [a["Pid"] for a in _explain_actors() if a["State"] == "ALIVE"]
        assert len(alive) == 1 and done < total
        os.kill(alive[0], signal.SIGKILL)
        killed.append(done)

    batch = _ray_batch(tiny_profile, tmp_path / "out")
    summary = batch.run(scan_images(images, NEU), progress=kill_the_actor_once)
    assert killed and killed[0] < 21
    assert max(a["NumRestarts"] for a in _explain_actors()) >= 1
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert rows == plain_rows
    assert summary.total == 21 and summary.succeeded == 20 and summary.failed == 1


def test_resume_after_an_interrupted_run_redoes_only_what_is_missing(
    local_ray: None, tiny_profile: Path, images: Path, plain_rows: list, tmp_path: Path
) -> None:
    records = scan_images(images, NEU)
    output = tmp_path / "out"

    def interrupt(done: int, total: int, failed: int) -> None:
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _ray_batch(tiny_profile, output).run(records, progress=interrupt)
    first = csv_rows(output / "results.csv")
    assert 8 <= len(first) < 21
    assert [r["path"] for r in first] == [r.rel_path.as_posix() for r in records[: len(first)]]
    done = [r["path"] for r in first if r["status"] == "ok"]
    # One finished image lost a file: resume must explain it again.
    lost = output / Path(done[0]).with_suffix("")
    lost.with_name(lost.name + "_cam.npy").unlink()
    kept = output / Path(done[1]).with_suffix("")
    kept_overlay = kept.with_name(kept.name + "_overlay.png")
    before = kept_overlay.stat().st_mtime_ns

    batch = _ray_batch(tiny_profile, output, resume=True)
    calls: list[tuple[int, int, int]] = []
    summary = batch.run(records, progress=lambda *call: calls.append(call))
    assert batch.skipped == len(done) - 1
    assert calls[-1] == (21 - batch.skipped, 21 - batch.skipped, 1)
    assert kept_overlay.stat().st_mtime_ns == before
    assert lost.with_name(lost.name + "_cam.npy").is_file()
    assert csv_rows(output / "results.csv") == plain_rows
    assert summary.total == 21 and summary.failed == 1


def test_resume_keeps_nothing_when_the_earlier_files_are_gone(
    local_ray: None, tiny_profile: Path, images: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    _ray_batch(tiny_profile, output).run(scan_images(images, NEU))
    shutil.rmtree(output / "IMAGES")
    batch = _ray_batch(tiny_profile, output, resume=True)
    batch.run(scan_images(images, NEU))
    assert batch.skipped == 0
    assert len(list((output / "IMAGES").glob("*_overlay.png"))) == 20


def test_uri_input_and_output_go_through_pyarrow_file_systems(
    local_ray: None,
    tiny_profile: Path,
    images: Path,
    plain_output: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """file:// URIs: pyarrow's LocalFileSystem, the code path an s3:// URI takes (S3 itself is
    not reachable from the tests). Annotations are not looked up on URIs."""
    output = tmp_path / "out"
    args = ["--profile", str(tiny_profile), "--batch-size", "4", "--save-raw", "--ray"]
    uris = ["--input", images.as_uri(), "--output", output.as_uri()]
    assert run(["batch", *args, *uris]) == EXIT_SOME_FAILED
    no_boxes = {"pointing_hit": "", "energy_in_box": ""}
    expected = [row | no_boxes for row in csv_rows(plain_output / "results.csv")]
    assert csv_rows(output / "results.csv") == expected
    assert _files(output) == _files(plain_output)
    for name in _files(plain_output):
        if name.endswith(".npy"):
            np.testing.assert_allclose(
                np.load(output / name), np.load(plain_output / name), rtol=0, atol=1e-6
            )
    assert not [p for p in output.rglob(".*")]  # no temp file left behind
    capsys.readouterr()
    assert run(["batch", *args, *uris, "--resume"]) == EXIT_SOME_FAILED
    assert "resumed: 20 images already done" in capsys.readouterr().err
    assert csv_rows(output / "results.csv") == expected


def test_ray_options_are_usage_errors_without_ray(
    tiny_profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["batch", "--profile", str(tiny_profile), "--output", str(tmp_path / "o")]
    assert run([*base, "--ray-actors", "2"]) == 2
    assert "--ray-actors needs --ray" in capsys.readouterr().err
    assert run([*base, "--input", "s3://bucket/images"]) == 2
    assert "URI (s3://...) needs --ray" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        run([*base, "--ray", "--ray-actors", "0"])
    assert stopped.value.code == 2
    assert "'0' is not a whole number from 1" in capsys.readouterr().err


def test_without_ray_installed_the_flag_says_what_to_install(
    tiny_profile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    monkeypatch.delitem(sys.modules, "engine.ray_batch", raising=False)
    args = ["batch", "--profile", str(tiny_profile), "--output", str(tmp_path / "o"), "--ray"]
    assert run(args) == 2
    assert "--ray needs Ray: pip install 'gradcam-inspector[ray]' (ray is missing)" in (
        capsys.readouterr().err
    )


def test_an_output_that_cannot_be_written_stops_the_run_with_one_line(
    local_ray: None, tiny_profile: Path, images: Path, tmp_path: Path, capsys
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = ["batch", "--profile", str(tiny_profile), "--input", str(images), "--ray"]
    assert run([*args, "--output", (blocker / "out").as_uri()]) == 2
    err = capsys.readouterr().err
    assert f"cannot write '{blocker}/out/" in err
    assert "Traceback" not in err
