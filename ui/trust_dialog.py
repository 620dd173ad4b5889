"""The trust dialog: a model file that would run code when loaded, and the user's choice."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

# What loading does, per kind of trust (engine.errors.TrustNeeded.what).
EXPLANATIONS = {
    "pickle": (
        "This file is a full pickled Python object, not plain weights. Unpickling it can run "
        "any code its author put in it, with your account's access to your files and network."
    ),
    "code": (
        "This model is built by Python code that comes with it. Loading it runs that code, "
        "with your account's access to your files and network."
    ),
}
REMEMBER = {
    "pickle": "Remember: write trust_pickle = true into the profile",
    "code": "Remember: write trust_code = true into the profile",
}


class TrustDialog(QDialog):
    """Says what loading would run; Load anyway, optionally remembered in the saved profile."""

    def __init__(self, parent: QWidget | None, message: str, what: str, can_remember: bool) -> None:
        super().__init__(parent)
        self.what = what
        self.setWindowTitle("Load this model anyway?")
        explanation = QLabel(
            f"{EXPLANATIONS[what]}\n\nLoad it only if you made it or trust who did.\n\n{message}"
        )
        explanation.setWordWrap(True)
        self.remember = QCheckBox(REMEMBER[what])
        self.remember.setEnabled(can_remember)
        if not can_remember:
            self.remember.setToolTip("There is no profile file to write into")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.load_button = buttons.addButton("Load anyway", QDialogButtonBox.ButtonRole.AcceptRole)
        # Enter (a reviewer's key, pressed out of habit) cancels: only a deliberate click or
        # Alt/Space on "Load anyway" runs the file's code.
        self.load_button.setAutoDefault(False)
        cancel = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)
        cancel.setFocus()
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(explanation)
        layout.addWidget(self.remember)
        layout.addWidget(buttons)
        self.resize(520, self.sizeHint().height())
