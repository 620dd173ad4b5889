"""Session reports: CSV rows and columns, one-file HTML with decodable figures, escaped notes."""

from __future__ import annotations

import base64
import csv
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import InspectorError
from engine.report import CSV_COLUMNS, write_report
from engine.session import Session, SessionContext
from engine.summary import confusion_table, localisation_table

CHROMIUM = Path("/usr/bin/chromium")


def headless_chromium(profile: Path) -> list[str]:
    """Chromium with no window and nothing reaching out to the (closed) network."""
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]


EVIL_NOTE = '<script>alert("x")</script> & <b>bold</b>'


def _overlay(rel_path: str) -> np.ndarray | None:
    """A solid magenta 600x400 overlay for b.png (a colour no figure uses), none for the rest."""
    if rel_path != "b.png":
        return None
    image = np.zeros((400, 600, 3), dtype=np.uint8)
    image[..., 0] = 255
    image[..., 2] = 255
    return image


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    path = tmp_path / "s.sqlite"
    context = SessionContext(tmp_path / "images", None, "ab" * 32, "features", "gradcam")
    opened = Session.open(path, context, "ann")
    opened.record_result("a.png", "crazing", 0.9, "crazing", True, 0.75)
    opened.record_result("b.png", "patches", 0.55, "crazing", False, 0.25)
    opened.record_result("c.png", "patches", 0.8, "patches", True, 0.5)
    opened.record_result("d.png", "crazing", 0.6, None)
    opened.set_verdict("a.png", 1)
    opened.set_verdict("b.png", 3, corrected="crazing", note=EVIL_NOTE)
    opened.set_verdict("c.png", 2, note="heat on the roller mark")
    yield opened
    opened.close()


def test_csv_has_one_row_per_image_with_the_columns(session: Session, tmp_path: Path) -> None:
    files = write_report(session, tmp_path / "out", _overlay)
    with files.csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == (*CSV_COLUMNS, "verdict:ann")
    assert [r["path"] for r in rows] == ["a.png", "b.png", "c.png", "d.png"]
    b = rows[1]
    assert (b["ground_truth"], b["prediction"], b["confidence"]) == ("crazing", "patches", "0.5500")
    assert (b["verdict"], b["corrected_class"], b["note"]) == ("3", "crazing", EVIL_NOTE)
    assert (b["pointing_hit"], b["energy_in_box"], b["reviewer"]) == ("0", "0.2500", "ann")
    assert b["time"].startswith("20")
    assert (b["adjudicated_by"], b["adjudicated_at"], b["disputed"], b["verdict:ann"]) == (
        "",
        "",
        "no",
        "3",
    )
    d = rows[3]
    assert (d["ground_truth"], d["verdict"], d["reviewer"], d["pointing_hit"]) == ("", "", "", "")


def _data_images(text: str) -> list[np.ndarray]:
    uris = re.findall(r'src="data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)"', text)
    buffers = [np.frombuffer(base64.b64decode(u, validate=True), np.uint8) for u in uris]
    return [cv2.imdecode(b, cv2.IMREAD_COLOR) for b in buffers]


def test_html_is_one_file_with_decodable_figures_and_overlays(
    session: Session, tmp_path: Path
) -> None:
    files = write_report(session, tmp_path / "out", _overlay)
    assert sorted(p.name for p in files.html.parent.iterdir()) == ["report.csv", "report.html"]
    text = files.html.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:)', text), "the report must not link other files"
    images = _data_images(text)
    # verdicts per class, confusion matrix, localisation, then b.png's overlay.
    assert len(images) == 4
    assert all(image is not None and image.size > 0 for image in images)
    figures, overlay = images[:3], images[3]
    assert all(image.std() > 0 for image in figures), "a figure is blank"
    assert overlay.shape == (256, 384, 3)  # 600x400 scaled to fit 384 pixels
    # Overlays are JPEG thumbnails (figures stay PNG): magenta within JPEG's rounding.
    assert text.count("data:image/jpeg;base64,") == 1 and text.count("data:image/png") == 3
    assert np.all(overlay[..., [0, 2]] >= 250) and np.all(overlay[..., 1] <= 5)
    # The method is named as the window names it, from the method registry.
    assert "<td>method</td><td>Grad-CAM (gradcam)</td>" in text


def test_gallery_shows_marked_images_with_escaped_notes(session: Session, tmp_path: Path) -> None:
    text = write_report(session, tmp_path / "out", _overlay).html.read_text(encoding="utf-8")
    gallery = text[text.index("Images to look at") :]
    assert "b.png" in gallery and "c.png" in gallery
    assert "a.png" not in gallery and "d.png" not in gallery
    assert EVIL_NOTE not in text and "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "heat on the roller mark" in gallery
    assert "no overlay" in gallery  # c.png has none
    assert "right class, heat elsewhere" in gallery and "wrong class" in gallery


def test_summary_statistics(session: Session) -> None:
    records = session.records()
    confusion = confusion_table(records)
    assert confusion.classes == ("crazing", "patches")
    assert confusion.counts.tolist() == [[1, 1], [0, 1]]
    scores = localisation_table(records)
    assert scores.classes == ("crazing", "patches")
    assert scores.pointing == (0.5, 1.0)
    assert scores.energy == pytest.approx((0.5, 0.5))


def test_report_without_results_or_overlays(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Session.open(path, SessionContext(tmp_path, None, "x", "l", "m"), "ann") as empty:
        files = write_report(empty, tmp_path / "out")
    assert files.csv.read_text(encoding="utf-8").splitlines() == [",".join(CSV_COLUMNS)]
    text = files.html.read_text(encoding="utf-8")
    assert "No images in this session." in text and "No image was marked 2, 3 or 4." in text


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium (/usr/bin/chromium) is not installed"
)
def test_report_renders_in_headless_chromium(session: Session, tmp_path: Path) -> None:
    files = write_report(session, tmp_path / "out", _overlay)
    shot = tmp_path / "shot.png"
    command = [
        *headless_chromium(tmp_path / "profile"),
        f"--screenshot={shot}",
        "--window-size=1200,6000",
        files.html.as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None and image.std() > 5, "the rendered report is blank"
    # The embedded figures show: their coloured bars are the only saturated pixels on the page.
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
    assert (saturation > 100).sum() > 5_000, "no embedded image was drawn"
    # The gallery shows b.png's overlay: a large block of its magenta (BGR 255, 0, 255).
    magenta = (image[..., 0] > 230) & (image[..., 1] < 30) & (image[..., 2] > 230)
    assert magenta.sum() > 20_000, "the gallery overlay is not on the rendered page"


def test_csv_keeps_formula_like_notes_as_text(session: Session, tmp_path: Path) -> None:
    session.set_verdict("d.png", 4, note='=HYPERLINK("http://x","click")')
    session.set_verdict("c.png", 2, note="-2 mm from the edge")
    files = write_report(session, tmp_path / "out", _overlay)
    with files.csv.open(newline="", encoding="utf-8") as handle:
        rows = {r["path"]: r for r in csv.DictReader(handle)}
    assert rows["d.png"]["note"] == '\'=HYPERLINK("http://x","click")'
    assert rows["c.png"]["note"] == "'-2 mm from the edge"
    assert rows["b.png"]["note"] == EVIL_NOTE  # ordinary text is unchanged
    assert rows["b.png"]["confidence"] == "0.5500"  # numbers are not text cells


def test_csv_guard_holds_after_a_bare_carriage_return_and_a_huge_note(
    session: Session, tmp_path: Path
) -> None:
    """A bare CR in a note used to end the row there; the next 'row' began with +cmd|..."""
    session.set_note("a.png", "fine\r+cmd|' /C calc'!A0")
    session.set_note("c.png", "\x00=1" + "y" * 1_000_000)
    files = write_report(session, tmp_path / "rep")
    with files.csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 5  # header + 4 images: no extra record split off at the CR
    notes = {row[0]: row[CSV_COLUMNS.index("note")] for row in rows[1:]}
    assert notes["a.png"] == "fine\r+cmd|' /C calc'!A0"
    assert notes["c.png"].startswith("'=1y") and len(notes["c.png"]) == 32_767
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def test_print_stylesheet_and_sign_off(session: Session, tmp_path: Path) -> None:
    session.set_verdict("d.png", 4)
    other = Session.open_existing  # a second reviewer's verdict, in another sitting
    session.close()
    with other(tmp_path / "s.sqlite", "bob") as again:
        again.set_verdict("a.png", 2)
        text = write_report(again, tmp_path / "out", _overlay, generated="GEN").html.read_text(
            encoding="utf-8"
        )
    css = text[text.index("<style>") : text.index("</style>")]
    assert "@page{" in css and "@top-left{content:" in css and "counter(pages)" in css
    assert "section{break-before:page;page-break-before:always}" in css
    assert ".card{break-inside:avoid;page-break-inside:avoid}" in css
    signoff = text[text.index("<h2>Sign-off</h2>") :]
    assert "<th></th>" not in text  # key/value tables (facts, sign-off) have no empty header row
    # Each reviewer's own verdicts; bob's 2 on a.png sits beside ann's 1, replacing nothing,
    # so a.png has no final verdict until a lead settles it.
    assert "<td>reviewers</td><td>ann (4 verdicts), bob (1 verdict)</td>" in signoff
    assert "<td>report date</td><td>GEN</td>" in signoff
    assert f"<td>weights sha256</td><td>{'ab' * 32}</td>" in signoff
    assert "<td>reviewed</td><td>3 of 4 images, 1 open disagreement</td>" in signoff
    for line in ("Approved by (name)", "Date", "Signature"):
        assert f'<div class="line"><span>{line}</span></div>' in signoff


def test_css_header_cannot_leave_its_string(tmp_path: Path) -> None:
    folder = tmp_path / 'x"}<script>'
    context = SessionContext(folder, None, "ab" * 32, "l", "gradcam")
    with Session.open(tmp_path / "s.sqlite", context, "ann") as opened:
        text = write_report(opened, tmp_path / "out").html.read_text(encoding="utf-8")
    assert "<script>" not in text and text.count("</style>") == 1
    assert '@top-left{content:"Inspection\\20 report\\3a \\20 x\\22 \\7d \\3c script\\3e ' in text


def test_an_overlay_that_cannot_be_drawn_is_a_note_on_its_card(
    session: Session, tmp_path: Path
) -> None:
    def broken(rel_path: str) -> np.ndarray:
        raise InspectorError(f"cannot read '{rel_path}': the file does not exist")

    text = write_report(session, tmp_path / "out", broken).html.read_text(encoding="utf-8")
    gallery = text[text.index("Images to look at") :]
    assert gallery.count('<p class="missing">overlay unavailable: cannot read') == 2
    assert "b.png&#x27;: the file does not exist" in gallery
    # A verdict given without a recorded map names the session's layer and method.
    assert "map: Grad-CAM (gradcam) at features, predicted class (the session" in gallery


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium (/usr/bin/chromium) is not installed"
)
def test_report_prints_with_a_header_on_every_page_and_a_page_per_section(
    session: Session, tmp_path: Path
) -> None:
    from pypdf import PdfReader

    files = write_report(session, tmp_path / "out", _overlay)
    pdf = tmp_path / "printed.pdf"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--no-pdf-header-footer",  # the page-margin boxes are the report's own header
        f"--print-to-pdf={pdf}",
        files.html.as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    pages = [" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages]
    # The summary, three figures, the gallery, the sign-off: one page each.
    assert len(pages) == 6
    for number, text in enumerate(pages, 1):
        header = f"Inspection report: images - weights {'ab' * 6} page {number} of 6 "
        assert text.startswith(header), text[:120]
    body = [text.split(" of 6 ", 1)[1] for text in pages]  # (Chromium sets "ff" as a ligature)
    assert body[0].startswith("Inspection report: images folder")
    assert [b.split()[0] for b in body[1:]] == [
        "Verdicts",
        "Prediction",
        "Localisation",
        "Images",
        "Sign-o\ufb00",
    ]
