"""The session summary: verdicts per class, confusion matrix and localisation scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.agreement import AgreementReport, Kappa, describe, kappa_text
from engine.report import CODE_COLOURS
from engine.session_records import ReviewedImage
from engine.summary import (
    NO_GROUND_TRUTH,
    NO_PREDICTION,
    ClassCounts,
    confusion_table,
    localisation_table,
    verdict_counts,
)

POINTING_COLOUR = (31, 119, 180)
ENERGY_COLOUR = (245, 166, 35)


def _floats(values: Sequence[float | None]) -> np.ndarray:
    """Scores as a float array for the bars; NaN where a class has no data."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


class SummaryDock(QDockWidget):
    """Three tabs: verdicts per predicted class (stacked bars: codes 1..4 then unreviewed),
    the confusion matrix of prediction vs ground truth, and localisation scores per class."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Summary", parent)
        self.setObjectName("SummaryDock")
        self.plot = pg.PlotWidget(background=self.palette().color(QPalette.ColorRole.Base))
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("left", "images")
        self.plot.addLegend(offset=(-4, 4))
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        verdicts = _page(self.plot, self.caption)
        self.tabs = QTabWidget()
        self.tabs.addTab(verdicts, "Verdicts")
        self.tabs.addTab(self._build_confusion(), "Confusion")
        self.tabs.addTab(self._build_localisation(), "Localisation")
        self.tabs.addTab(self._build_agreement(), "Agreement")
        self.setWidget(self.tabs)
        self.heights = np.zeros((0, 5), dtype=int)  # per class: codes 1..4, unreviewed
        self.classes: list[str] = []
        self.confusion = np.zeros((0, 0), dtype=int)  # [ground truth, prediction]
        self.confusion_classes: list[str] = []
        self.localisation_classes: list[str] = []
        self.pointing_rate = np.zeros(0)
        self.mean_energy = np.zeros(0)

    def _build_confusion(self) -> QWidget:
        self.confusion_table = QTableWidget()
        self.confusion_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for header in (
            self.confusion_table.horizontalHeader(),
            self.confusion_table.verticalHeader(),
        ):
            header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.confusion_caption = QLabel()
        self.confusion_caption.setWordWrap(True)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("Rows: ground truth; columns: prediction."))
        layout.addWidget(self.confusion_table)
        layout.addWidget(self.confusion_caption)
        return page

    def _build_localisation(self) -> QWidget:
        self.localisation_plot = pg.PlotWidget(
            background=self.palette().color(QPalette.ColorRole.Base)
        )
        self.localisation_plot.setMenuEnabled(False)
        self.localisation_plot.setMouseEnabled(x=False, y=False)
        self.localisation_plot.setLabel("left", "rate / fraction")
        self.localisation_plot.setYRange(0, 1)
        self.localisation_plot.addLegend(offset=(-4, 4))
        self.localisation_caption = QLabel()
        self.localisation_caption.setWordWrap(True)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.localisation_plot)
        layout.addWidget(self.localisation_caption)
        return page

    def _build_agreement(self) -> QWidget:
        self._agreement: AgreementReport | None = None
        # Pairs are rows and a class is chosen above: the table stays narrow for any number
        # of reviewers and classes (the dock is a third of a 1366-pixel screen).
        self.agreement_class = QComboBox()
        self.agreement_class.setToolTip("Agreement on all images, or on one predicted class")
        self.agreement_class.currentIndexChanged.connect(self._fill_agreement)
        self.agreement_table = QTableWidget(0, len(AGREEMENT_COLUMNS))
        self.agreement_table.setHorizontalHeaderLabels(AGREEMENT_COLUMNS)
        for column, tip in enumerate(AGREEMENT_TIPS):
            self.agreement_table.horizontalHeaderItem(column).setToolTip(tip)
        self.agreement_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.agreement_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.agreement_caption = QLabel()
        self.agreement_caption.setWordWrap(True)
        page = _page(self.agreement_caption, self.agreement_class, self.agreement_table)
        self.show_agreement(None)
        return page

    def show_agreement(self, report: AgreementReport | None) -> None:
        """Cohen's kappa per pair and Fleiss' kappa for the class chosen above the table
        (overall by default), with the counts; a line instead while fewer than two reviewers
        gave verdicts."""
        self._agreement = report
        if report is None or len(report.reviewers) < 2:
            self.agreement_table.setRowCount(0)
            self.agreement_table.hide()
            self.agreement_class.hide()
            self.agreement_caption.setText(_lone_reviewer(report))
            return
        self._fill_classes(report)
        self._fill_agreement()
        self.agreement_caption.setText(
            f"{len(report.reviewers)} reviewers, {_images(len(report.disagreements))} with "
            "differing verdicts. Cohen's kappa on the images both of a pair reviewed; "
            "Fleiss' kappa on those every reviewer reviewed."
        )

    def _fill_classes(self, report: AgreementReport) -> None:
        """The class chooser: overall, then each predicted class; the choice is kept."""
        box = self.agreement_class
        chosen = box.currentData()
        box.blockSignals(True)
        box.clear()
        box.addItem("all classes", None)
        for name in report.fleiss_per_class:
            box.addItem(f"predicted {name or NO_PREDICTION}", name)
        found = box.findData(chosen)
        box.setCurrentIndex(max(found, 0) if chosen is not None else 0)
        box.blockSignals(False)
        box.show()

    def _fill_agreement(self) -> None:
        report = self._agreement
        if report is None or len(report.reviewers) < 2:
            return
        rows, kappas = agreement_rows(report, self.agreement_class.currentData())
        table = self.agreement_table
        table.setRowCount(len(rows))
        table.setVerticalHeaderLabels(rows)
        for row, kappa in enumerate(kappas):
            for column, text in enumerate(agreement_cells(kappa)):
                item = QTableWidgetItem(text)
                item.setToolTip(kappa_tooltip(kappa))
                table.setItem(row, column, item)
        table.show()

    def show_records(self, records: Sequence[ReviewedImage]) -> None:
        """Redraw the confusion matrix and localisation scores from the session's results."""
        confusion = confusion_table(records)
        self._show_confusion(list(confusion.classes), confusion.counts)
        scores = localisation_table(records)
        self._show_localisation(
            [name or NO_GROUND_TRUTH for name in scores.classes],
            _floats(scores.pointing),
            _floats(scores.energy),
        )

    def _show_confusion(self, classes: list[str], counts: np.ndarray) -> None:
        self.confusion_classes, self.confusion = classes, counts
        table = self.confusion_table
        table.clear()
        table.setRowCount(len(classes))
        table.setColumnCount(len(classes))
        table.setVerticalHeaderLabels(classes)
        table.setHorizontalHeaderLabels(classes)
        row_totals = counts.sum(axis=1)
        for row, column in np.ndindex(counts.shape):
            count = int(counts[row, column])
            share = count / row_totals[row] if row_totals[row] else 0.0
            item = QTableWidgetItem(str(count))
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            item.setToolTip(
                f"ground truth {classes[row]}, predicted {classes[column]}: "
                f"{count} ({share:.0%} of {classes[row]})"
            )
            # Green on the diagonal, red off it; the shade grows with the row's share.
            hue = (46, 160, 67) if row == column else (214, 39, 40)
            item.setBackground(QBrush(QColor(*hue, round(40 + 200 * share) if count else 0)))
            table.setItem(row, column, item)
        total = int(counts.sum())
        correct = int(np.trace(counts))
        self.confusion_caption.setText(
            f"{correct} of {total} images predicted as their ground truth."
            if total
            else "No image has both a ground truth and a prediction yet."
        )

    def _show_localisation(self, classes: list[str], rate: np.ndarray, energy: np.ndarray) -> None:
        self.localisation_classes, self.pointing_rate, self.mean_energy = classes, rate, energy
        plot = self.localisation_plot
        plot.clear()
        x = np.arange(len(classes), dtype=float)
        for offset, values, colour, name in (
            (-0.2, rate, POINTING_COLOUR, "pointing-game hit rate"),
            (0.2, energy, ENERGY_COLOUR, "mean energy in box"),
        ):
            plot.addItem(
                pg.BarGraphItem(
                    x=x + offset, height=np.nan_to_num(values), width=0.38, brush=colour, name=name
                )
            )
        plot.getAxis("bottom").setTicks([list(enumerate(classes))])
        self.localisation_caption.setText(
            "Per ground-truth class, over explained images with boxes; "
            f"{NO_GROUND_TRUTH} gathers those whose class is not known."
            if classes
            else "No image with ground-truth boxes has been explained yet."
        )

    def show_counts(self, counts: Sequence[ClassCounts], labels: Sequence[str] | None) -> None:
        """Redraw from the session's per-class counts; None labels means no session."""
        self.plot.clear()
        self.classes = [c.cls or NO_PREDICTION for c in counts]
        self.heights = verdict_counts(counts)
        if labels is None:
            self.caption.setText("No session: nothing to summarise.")
            return
        names = [f"{code} {label}" for code, label in enumerate(labels, start=1)]
        x = np.arange(len(self.classes))
        bottom = np.zeros(len(self.classes))
        for column, name in enumerate([*names, "unreviewed"]):
            height = self.heights[:, column].astype(float)
            bars = pg.BarGraphItem(
                x=x, height=height, y0=bottom, width=0.7, brush=CODE_COLOURS[column], name=name
            )
            self.plot.addItem(bars)
            bottom += height
        self.plot.getAxis("bottom").setTicks([list(enumerate(self.classes))])
        reviewed = int(self.heights[:, :4].sum())
        self.caption.setText(
            f"Reviewed {reviewed} of {int(self.heights.sum())} images, by predicted class."
        )


def _images(count: int) -> str:
    return "1 image" if count == 1 else f"{count} images"


def _lone_reviewer(report: AgreementReport | None) -> str:
    """What the agreement tab says while there is nothing to compare."""
    if report is None:
        return "No session: nothing to compare."
    if not report.reviewers:
        return "No verdicts yet: agreement needs two reviewers."
    return f"One reviewer so far ({report.reviewers[0]}): agreement needs two."


AGREEMENT_COLUMNS = ("kappa", "n", "agreed", "chance")
AGREEMENT_TIPS = (
    "Cohen's kappa for a pair, Fleiss' kappa for all, with Landis & Koch's word for it",
    "images compared: both of the pair (Cohen) or every reviewer (Fleiss) gave a verdict",
    "observed agreement: the share of those images with the same verdict",
    "the agreement expected by chance from each reviewer's mix of verdicts",
)


def agreement_rows(
    report: AgreementReport, class_name: str | None = None
) -> tuple[list[str], list[Kappa]]:
    """The agreement table for one predicted class (None: all): a row per pair of reviewers
    (Cohen's kappa), then one for all of them (Fleiss' kappa)."""
    rows = [f"{p.a} – {p.b}" for p in report.pairs]
    rows.append(f"all {len(report.reviewers)} (Fleiss)")
    if class_name is None:
        return rows, [*(p.overall for p in report.pairs), report.fleiss]
    kappas = [p.per_class[class_name] for p in report.pairs]
    return rows, [*kappas, report.fleiss_per_class[class_name]]


def agreement_cells(k: Kappa) -> tuple[str, str, str, str]:
    """A row's cells under AGREEMENT_COLUMNS."""
    observed = "" if k.observed is None else f"{k.observed:.0%}"
    expected = "" if k.expected is None else f"{k.expected:.0%}"
    return kappa_text(k), str(k.n), observed, expected


def kappa_tooltip(k: Kappa) -> str:
    """The counts behind a kappa: images, observed and chance agreement."""
    if k.observed is None or k.expected is None:
        return describe(k)
    return f"{describe(k)}; observed agreement {k.observed:.1%}, by chance {k.expected:.1%}"


def _page(*widgets: QWidget) -> QWidget:
    """A tab's page: the widgets one above the other."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(4, 4, 4, 4)
    for widget in widgets:
        layout.addWidget(widget)
    return page
