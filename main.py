"""Grad-CAM Inspector's entry point: `python main.py [COMMAND ...]` or the gradcam-inspector script.

With no command it runs the batch export on the bundled demo model and images (the
inspection window, which will become the no-argument default, is not built yet).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from engine.cli import run

    args = list(sys.argv[1:] if argv is None else argv)
    return run(args or ["batch"])


if __name__ == "__main__":
    sys.exit(main())
