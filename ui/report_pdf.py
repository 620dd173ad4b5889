"""report.pdf from report.html with Qt's own PDF writer (QtGui): no browser, works in the bundle."""

from __future__ import annotations

import os
import re
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMarginsF, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QFont,
    QGuiApplication,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextBlock,
    QTextBlockFormat,
    QTextCursor,
    QTextDocument,
)

from engine.errors import InspectorError
from engine.export import atomic_write_bytes

PAPERS = {"a4": QPageSize.PageSizeId.A4, "letter": QPageSize.PageSizeId.Letter}
MARGINS_MM = QMarginsF(12, 10, 12, 10)
# The document is laid out this many CSS pixels wide, then scaled to the paper: the report's
# widest figure (770 px) fits, and A4 and Letter differ only in how much goes on a page.
LAYOUT_WIDTH = 800
BAND = 30  # layout pixels above and below each page's body: the header and the page number
# Qt's HTML reader ignores @media print and knows no <section>: each h2 starts a section.
_PDF_CSS = "<style>h2{page-break-before:always}</style>"
# The sign-off's lines to sign are div borders, which Qt's HTML reader does not draw: a rule each.
_SIGN_LINE = re.compile(r'<div class="line"><span>(.*?)</span></div>')
_RULE = r'<p style="margin-top:36px">&nbsp;</p><hr><p>\1</p>'


def _application() -> QGuiApplication:
    """The running application, or an offscreen one (the command line has no window)."""
    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication(["gradcam-inspector"])
    return app  # type: ignore[return-value]


def _font(pixels: int) -> QFont:
    """A font sized in layout pixels: a point size would follow the PDF's 1200 dpi."""
    font = QFont("sans-serif")
    font.setPixelSize(pixels)
    return font


def _document(html: str) -> QTextDocument:
    document = QTextDocument()
    document.setDocumentMargin(0)
    document.setDefaultFont(_font(13))
    html = _SIGN_LINE.sub(_RULE, html.replace("</head>", _PDF_CSS + "</head>", 1))
    document.setHtml(html)
    return document


def write_report_pdf(html_path: Path, pdf_path: Path, paper: str = "a4") -> int:
    """Write pdf_path from the report at html_path on A4 or Letter; returns the page count.

    Each page repeats the report's title at the top and says "page i of n" at the bottom.
    """
    if paper not in PAPERS:
        raise InspectorError(f"paper must be one of {', '.join(PAPERS)}, got '{paper}'")
    app = _application()  # noqa: F841  # kept alive while Qt lays out and paints
    try:
        html = Path(html_path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InspectorError(f"cannot read '{html_path}': {exc.strerror or exc}") from exc
    document = _document(html)
    buffer = QBuffer()  # its own byte array: one passed in must outlive it
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setPageSize(QPageSize(PAPERS[paper]))
    writer.setPageMargins(MARGINS_MM, QPageLayout.Unit.Millimeter)
    title = document.metaInformation(QTextDocument.MetaInformation.DocumentTitle)
    writer.setTitle(title)
    writer.setCreator("Grad-CAM Inspector")
    pages = _paint(document, writer, title)
    buffer.close()
    atomic_write_bytes(pdf_path, bytes(buffer.data().data()))
    return pages


def _cards(document: QTextDocument) -> list[tuple[QTextBlock, QTextBlock]]:
    """Each gallery card's first and last block: a card starts at its h3 and runs to the
    block before the next heading. The agreement section's h3 parts (a heading and its table)
    are taken alike, so a short table is not split either."""
    cards: list[tuple[QTextBlock, QTextBlock]] = []
    block = document.begin()
    while block.isValid():
        level = block.blockFormat().headingLevel()
        if cards and level and cards[-1][1] == cards[-1][0]:
            cards[-1] = (cards[-1][0], block.previous())
        if level == 3:
            cards.append((block, block))
        block = block.next()
    if cards and cards[-1][1] == cards[-1][0]:
        cards[-1] = (cards[-1][0], document.lastBlock())
    return cards


def _keep_cards_whole(document: QTextDocument, body: float) -> None:
    """Qt's layout has no page-break-inside: a card that would straddle two pages starts the
    next one instead (cards taller than a page are left to split)."""
    layout = document.documentLayout()
    for first, last in _cards(document):
        top = layout.blockBoundingRect(first).top()
        bottom = layout.blockBoundingRect(last).bottom()
        if int(top // body) != int((bottom - 1) // body) and bottom - top < body:
            fmt = QTextBlockFormat()
            fmt.setPageBreakPolicy(QTextBlockFormat.PageBreakFlag.PageBreak_AlwaysBefore)
            QTextCursor(first).mergeBlockFormat(fmt)


def _paint(document: QTextDocument, writer: QPdfWriter, title: str) -> int:
    """Lay the document out in pages of the paper's shape and paint them one by one."""
    area = writer.pageLayout().paintRectPixels(writer.resolution())
    scale = area.width() / LAYOUT_WIDTH
    body = area.height() / scale - 2 * BAND
    document.setPageSize(QSizeF(LAYOUT_WIDTH, body))
    _keep_cards_whole(document, body)
    pages = document.pageCount()
    painter = QPainter(writer)
    try:
        painter.setFont(_font(11))
        for page in range(pages):
            if page:
                writer.newPage()
            painter.save()
            painter.scale(scale, scale)
            painter.setPen(Qt.GlobalColor.darkGray)
            top = QRectF(0, 0, LAYOUT_WIDTH, BAND - 8)
            painter.drawText(top, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, title)
            bottom = QRectF(0, BAND + body + 8, LAYOUT_WIDTH, BAND - 8)
            flags = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom
            painter.drawText(bottom, flags, f"page {page + 1} of {pages}")
            painter.translate(0, BAND - page * body)
            document.drawContents(painter, QRectF(0, page * body, LAYOUT_WIDTH, body))
            painter.restore()
    finally:
        painter.end()
    return pages
