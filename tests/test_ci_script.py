"""`.ci/run` fails when the install fails (an && list under `set -e` once hid that: a full disk
stopped pip half-way, ruff had been installed, and CI ended green without running a test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# "python3.11" installs ruff, then fails the way pip did when the disk was full.
HALF_INSTALL = """#!/bin/sh
mkdir -p .venv/bin
printf '#!/bin/sh\\ntouch ruff-ran\\n' > .venv/bin/ruff
chmod +x .venv/bin/ruff
echo 'ERROR: [Errno 28] No space left on device' >&2
exit 1
"""


def test_a_failed_install_fails_ci(tmp_path: Path) -> None:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    scripts = {"python3.11": HALF_INSTALL, "apt-get": "#!/bin/sh\nexit 1\n"}
    scripts |= {tool: "#!/bin/sh\nexit 0\n" for tool in ("chromium", "pdftoppm", "openssl")}
    for name, body in scripts.items():
        (stubs / name).write_text(body, encoding="utf-8")
        (stubs / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "CI": "true"}
    done = subprocess.run(
        ["bash", ".ci/run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "No space left on device" in done.stderr
    assert not (tmp_path / "ruff-ran").exists()  # nothing after the failed install ran
