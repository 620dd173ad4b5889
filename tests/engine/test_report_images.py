"""The `report` command draws every gallery card's overlay again: engine/report_images.py."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import report, report_images
from engine.cam import CamEngine
from engine.cli import run
from engine.dataset import ImageRecord, load_boxes, scan_images
from engine.images import load_image
from engine.profile import load_profile
from engine.render import RenderStyle, render_overlay
from engine.report import ReportData, jpeg_data_uri
from engine.report_images import GalleryOverlays
from engine.session import Session, SessionContext, VerdictView

GRADCAMPP_VIEW = VerdictView("layer3", "gradcam++", 1)


def _cards(html: str) -> dict[str, str]:
    """Each gallery card's HTML by its image path."""
    cards = re.findall(r'<div class="card verdict\d"><h3>([^<]+)</h3>(.*?)</div>', html)
    return dict(cards)


def _jpeg(card: str) -> np.ndarray | None:
    found = re.search(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', card)
    if found is None:
        return None
    data = np.frombuffer(base64.b64decode(found.group(1), validate=True), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


@pytest.fixture
def engine(tiny_profile: Path) -> CamEngine:
    return CamEngine.from_profile(load_profile(tiny_profile), "cpu")


@pytest.fixture
def folder(neu_folder: Path, tmp_path: Path) -> Path:
    """A copy of the generated images, so a test may delete one."""
    return Path(shutil.copytree(neu_folder, tmp_path / "images"))


@pytest.fixture
def records(folder: Path, engine: CamEngine) -> list[ImageRecord]:
    return scan_images(folder, engine.classes)[:4]


def _session(
    path: Path, folder: Path, profile: Path, weights: str, records: list[ImageRecord]
) -> Path:
    """Verdicts 2 (Grad-CAM), 3 (Grad-CAM++ at layer3 for class 1), 4 (no map recorded), 1."""
    context = SessionContext(folder, profile, weights, "layer4", "gradcam")
    rels = [r.rel_path.as_posix() for r in records]
    with Session.open(path, context, "ann") as session:
        for record in records:
            session.record_result(record.rel_path.as_posix(), "crazing", 0.9, record.ground_truth)
        session.set_verdict(rels[0], 2, view=VerdictView("layer4", "gradcam"))
        session.set_verdict(rels[1], 3, view=GRADCAMPP_VIEW)
        session.set_verdict(rels[2], 4)
        session.set_verdict(rels[3], 1, view=VerdictView("layer4", "gradcam"))
    return path


@pytest.fixture
def reviewed(tmp_path: Path, folder: Path, tiny_profile: Path, engine: CamEngine, records) -> Path:
    weights = engine.load_info.weights_sha256 or ""
    return _session(tmp_path / "s.sqlite", folder, tiny_profile, weights, records)


def _report(session: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = run(["report", str(session), "--output", str(out), "--device", "cpu", *extra])
    html = (out / "report.html").read_text(encoding="utf-8") if code == 0 else ""
    return code, html


def test_cli_report_has_an_overlay_with_heat_for_each_gallery_card(
    reviewed: Path, tmp_path: Path, records: list[ImageRecord], engine: CamEngine
) -> None:
    code, html = _report(reviewed, tmp_path / "r")
    assert code == 0
    cards = _cards(html)
    rels = [r.rel_path.as_posix() for r in records]
    assert sorted(cards) == sorted(rels[:3])  # verdicts 2, 3, 4; not the 1
    for rel, card in cards.items():
        overlay = _jpeg(card)
        assert overlay is not None, f"{rel} has no overlay"
        assert overlay.shape == (200, 200, 3) and overlay.std() > 10, f"{rel}'s overlay is blank"
        # The NEU images are gray: colour comes from the heatmap only.
        saturation = cv2.cvtColor(overlay, cv2.COLOR_BGR2HSV)[..., 1]
        assert (saturation > 80).mean() > 0.3, f"{rel}'s overlay shows no heat"
    # The second card is drawn with its verdict's map: Grad-CAM++ at layer3 for class 1.
    record = records[1]
    image = load_image(record.path)
    truth = engine.classes.index(record.ground_truth)
    cam = engine.explain([image], "gradcam++", "layer3", target=1, ground_truth=[truth])[0].cam
    expected = render_overlay(image, cam, RenderStyle("jet", 0.5), load_boxes(record))
    assert f'src="{jpeg_data_uri(expected)}"' in cards[rels[1]]
    assert "map: Grad-CAM++ (gradcam++) at layer3, class 1" in cards[rels[1]]
    assert "(the session&#x27;s; not recorded with this verdict)" in cards[rels[2]]
    assert "<td>model</td><td>tiny</td>" in html  # the profile's name, in the sign-off


def test_folder_draws_the_images_from_where_they_are_on_this_machine(
    reviewed: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A team session began on another machine: its folder is not here, these images are."""
    here = Path(shutil.move(folder, tmp_path / "elsewhere"))
    code, html = _report(reviewed, tmp_path / "gone")
    assert code == 0 and "data:image/jpeg" not in html  # the recorded folder has gone
    capsys.readouterr()
    code, html = _report(reviewed, tmp_path / "r", "--folder", str(here))
    cards = _cards(html)
    assert code == 0 and len(cards) == 3 and all(_jpeg(card) is not None for card in cards.values())
    assert f"<td>folder</td><td>{here}</td>" in html
    assert capsys.readouterr().err.count("warning") == 0
    assert _report(reviewed, tmp_path / "x", "--folder", str(tmp_path / "nope"))[0] == 2
    assert "is not a folder; check the path" in capsys.readouterr().err


def test_weights_other_than_the_sessions_are_refused_unless_allowed(
    tmp_path: Path, folder: Path, tiny_profile: Path, records, capsys: pytest.CaptureFixture
) -> None:
    session = _session(tmp_path / "s.sqlite", folder, tiny_profile, "0" * 64, records)
    code, _ = _report(session, tmp_path / "r")
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "r").exists()
    assert "error: The model's weights changed since the session was reviewed" in err
    assert "Pass --allow-other-weights" in err and "Traceback" not in err
    code, html = _report(session, tmp_path / "r", "--allow-other-weights")
    assert code == 0
    assert "warning: The model's weights changed" in capsys.readouterr().err
    assert '<p class="notice">The model&#x27;s weights changed' in html
    assert f"verdicts were given on weights sha256 {'0' * 64}" in html
    assert all(_jpeg(card) is not None for card in _cards(html).values())
    assert "<td>overlays drawn with weights</td>" in html  # in the sign-off


def test_a_missing_image_or_profile_is_a_note_on_the_card(
    reviewed: Path, tmp_path: Path, records: list[ImageRecord], capsys: pytest.CaptureFixture
) -> None:
    records[0].path.unlink()
    code, html = _report(reviewed, tmp_path / "r")
    assert code == 0
    cards = _cards(html)
    gone = cards[records[0].rel_path.as_posix()]
    assert _jpeg(gone) is None
    assert f"overlay unavailable: cannot read &#x27;{records[0].path}&#x27;" in gone
    assert "the file does not exist" in gone
    assert _jpeg(cards[records[1].rel_path.as_posix()]) is not None
    # Said on stderr too, one line per card (as the README promises).
    err = capsys.readouterr().err.splitlines()
    gone_rel = records[0].rel_path.as_posix()
    assert f"warning: overlay unavailable for '{gone_rel}': cannot read" in "\n".join(err)
    assert sum(line.startswith("warning: overlay unavailable") for line in err) == 1
    missing = tmp_path / "nowhere.toml"
    code, html = _report(reviewed, tmp_path / "r2", "--profile", str(missing))
    assert code == 0
    # It was passed: the advice is to check it, not to pass it.
    note = f"overlay unavailable: profile &#x27;{missing}&#x27; not found: check the --profile path"
    assert all(note in card for card in _cards(html).values())
    assert "warning: profile" in capsys.readouterr().err


def test_no_images_keeps_the_text_report(reviewed: Path, tmp_path: Path) -> None:
    code, html = _report(reviewed, tmp_path / "r", "--no-images")
    assert code == 0 and "data:image/jpeg" not in html
    cards = _cards(html)
    assert len(cards) == 3
    assert all("overlays not drawn (--no-images)" in card for card in cards.values())


def test_the_gallery_is_capped_and_the_rest_is_in_the_csv(
    reviewed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "GALLERY_LIMIT", 1)
    code, html = _report(reviewed, tmp_path / "r")
    assert code == 0
    assert len(_cards(html)) == 1 and html.count("data:image/jpeg") == 1
    more = "The first 1 are shown; the other 2 images marked 2, 3 or 4 are listed in report.csv."
    assert more in html
    assert "Images to look at (3)" in html
    rows = (tmp_path / "r" / "report.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 4


def test_cards_drawn_in_one_batch_match_cards_drawn_one_by_one(
    reviewed: Path, engine: CamEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ann changes her verdict: a third card on Grad-CAM (another reviewer's 2 would leave the
    # image disputed, without a final verdict and off the gallery).
    with Session.open_existing(reviewed, "ann") as session:
        session.set_verdict(session.records()[3].rel_path, 2)
        data = ReportData.read(session)
    cards = [r.rel_path for r in data.shown()]
    explain, batches = engine.explain, []

    def counted(images: list[np.ndarray], *args: object, **kwargs: object) -> list:
        batches.append(len(images))
        return explain(images, *args, **kwargs)

    monkeypatch.setattr(engine, "explain", counted)
    passes: list[tuple[int, int, int]] = []

    def between(drawn: int, total: int) -> None:
        passes.append((len(batches), drawn, total))

    batched = GalleryOverlays(engine, data, between)
    together = {rel: batched(rel) for rel in cards}
    assert batches == [3, 1]  # Grad-CAM's three cards in one pass, then Grad-CAM++'s one
    # `between` ran after each pass with the cards drawn so far (the window shows it).
    assert passes == [(1, 3, 4), (2, 4, 4)]
    monkeypatch.setattr(report_images, "BATCH_SIZE", 1)
    single = GalleryOverlays(engine, data)
    for rel in cards:
        alone = single(rel).astype(int)
        assert np.abs(alone - together[rel]).mean() < 0.5, rel
    assert batches == [3, 1, 1, 1, 1, 1]
