"""The inspection window: PySide6 widgets over the Qt-free engine."""
