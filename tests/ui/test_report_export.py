"""The window's report is the command line's, and report.pdf opens: ui/report_pdf.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest
from pypdf import PageObject, PdfReader

import main
from engine.cli import run
from tests.ui.conftest import RESULT_TIMEOUT_MS
from ui.main_window import MainWindow
from ui.report_pdf import write_report_pdf

PDFTOPPM = shutil.which("pdftoppm")  # poppler-utils
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")


def _without_times(text: str) -> str:
    return TIME.sub("TIME", text)


def _text(page: PageObject) -> str:
    """The page's text with runs of whitespace (pypdf gives tabs between words) as one space."""
    return " ".join(page.extract_text().split())


def _next_image(qtbot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        window.images.step(1)


@pytest.fixture
def reviewed(qtbot, window: MainWindow) -> MainWindow:
    """Three verdicts in the window: 3 and 4 on Grad-CAM, then 2 on Grad-CAM++ at layer3."""
    window.auto_advance.setChecked(False)
    window.set_verdict(3)
    _next_image(qtbot, window)
    window.set_verdict(4)
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        window.state.update(method="gradcam++", layer="layer3")
    _next_image(qtbot, window)
    window.set_verdict(2)
    return window


def test_window_and_command_line_write_the_same_report(
    qtbot, reviewed: MainWindow, tmp_path: Path
) -> None:
    window = reviewed
    with qtbot.waitSignal(window.sig_report_written, timeout=RESULT_TIMEOUT_MS) as written:
        window.export_report(tmp_path / "window")
    from_window = written.args[0]
    session = window.review.session.path
    window.review.close()  # the command line cannot open a session the window holds
    assert run(["report", str(session), "--output", str(tmp_path / "cli"), "--device", "cpu"]) == 0
    cli = tmp_path / "cli"
    assert (cli / "report.csv").read_bytes() == from_window.csv.read_bytes()
    page = from_window.html.read_text(encoding="utf-8")
    assert page.count("data:image/jpeg;base64,") == 3  # an overlay on each card
    assert "map: Grad-CAM++ (gradcam++) at layer3, predicted class" in page
    assert _without_times((cli / "report.html").read_text(encoding="utf-8")) == _without_times(page)


def test_report_pdf_opens_and_its_first_page_is_not_blank(
    qtbot, reviewed: MainWindow, tmp_path: Path
) -> None:
    with qtbot.waitSignal(reviewed.sig_report_written, timeout=RESULT_TIMEOUT_MS) as written:
        reviewed.export_report(tmp_path / "r")
    html = written.args[0].html
    pages = write_report_pdf(html, tmp_path / "r" / "report.pdf", "letter")
    reader = PdfReader(tmp_path / "r" / "report.pdf")
    assert len(reader.pages) == pages >= 5  # summary, 3 figures at most, gallery, sign-off
    width, height = reader.pages[0].mediabox.width, reader.pages[0].mediabox.height
    assert (round(width), round(height)) == (612, 792)  # Letter, in points
    first_text, last_text = _text(reader.pages[0]), _text(reader.pages[-1])
    assert first_text.startswith("Inspection report: neu")  # the header, on every page
    assert f"page 1 of {pages}" in first_text and f"page {pages} of {pages}" in last_text
    # Qt sets "ff" as a ligature: "Sign-o\ufb00".
    signed = f"Sign-o\ufb00 reviewers {reviewed.review.session.reviewer} (3 verdicts)"
    assert signed in last_text and "model tiny" in last_text
    if PDFTOPPM is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: the page is not rendered")
    first = tmp_path / "first"
    subprocess.run(
        [
            PDFTOPPM,
            "-r",
            "50",
            "-png",
            "-singlefile",
            "-f",
            "1",
            "-l",
            "1",
            str(tmp_path / "r" / "report.pdf"),
            str(first),
        ],
        check=True,
        timeout=60,
    )
    image = cv2.imread(str(first.with_suffix(".png")), cv2.IMREAD_GRAYSCALE)
    assert image is not None and image.std() > 5, "the first page is blank"
    assert (image < 128).mean() > 0.005, "no text was drawn on the first page"


def test_report_command_writes_the_pdf_through_main(
    qtbot, reviewed: MainWindow, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    session = reviewed.review.session.path
    reviewed.review.close()
    out = tmp_path / "r"
    args = ["report", str(session), "--output", str(out), "--no-images", "--pdf"]
    assert main.main(args) == 0
    reader = PdfReader(out / "report.pdf")
    assert f"wrote {out / 'report.pdf'} ({len(reader.pages)} pages, A4)" in capsys.readouterr().err
    assert round(reader.pages[0].mediabox.height) == 842  # A4, in points
    # engine.cli alone has no Qt: it says how to get a PDF instead of failing later.
    assert run(args) == 2
    assert "--pdf needs Qt" in capsys.readouterr().err


def test_the_pdf_draws_a_line_to_sign_for_each_sign_off_field(qapp) -> None:
    """The sign-off's lines are div borders in the HTML, which Qt's reader does not draw."""
    from ui.report_pdf import _document

    html = (
        "<html><head></head><body><h2>Sign-off</h2>"
        + "".join(
            f'<div class="line"><span>{label}</span></div>'
            for label in ("Approved by (name)", "Date", "Signature")
        )
        + "</body></html>"
    )
    document = _document(html)
    assert document.toHtml().count("<hr") == 3
    assert "Approved by (name)" in document.toPlainText()
