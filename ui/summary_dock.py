"""The session summary: verdicts per predicted class as stacked bars (pyqtgraph)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

from engine.report import CODE_COLOURS
from engine.session import ClassCounts

NO_PREDICTION = "(no prediction)"


class SummaryDock(QDockWidget):
    """Stacked bars, one per predicted class: verdicts 1..4 then the unreviewed images."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Summary", parent)
        self.setObjectName("SummaryDock")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("left", "images")
        self.plot.addLegend(offset=(-4, 4))
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.plot)
        layout.addWidget(self.caption)
        self.setWidget(body)
        self.heights = np.zeros((0, 5), dtype=int)  # per class: codes 1..4, unreviewed
        self.classes: list[str] = []

    def show_counts(self, counts: Sequence[ClassCounts], labels: Sequence[str] | None) -> None:
        """Redraw from the session's per-class counts; None labels means no session."""
        self.plot.clear()
        self.classes = [c.cls or NO_PREDICTION for c in counts]
        self.heights = np.array(
            [[*c.per_code, c.total - c.reviewed] for c in counts], dtype=int
        ).reshape(-1, 5)
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
