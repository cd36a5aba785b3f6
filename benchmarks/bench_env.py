"""The benchmarks' own venv: the `ansible` PyPI package (ansible-core plus the released kubernetes.core) and the
client libraries both collections need, cached under ~/.cache/deckhouse-platform/bench-<hash of the pins>."""
from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys

PINS = ["ansible==12.3.0", "kubernetes==37.0.2", "PyYAML==6.0.3", "jmespath==1.1.0"]
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "deckhouse-platform"


def ensure() -> pathlib.Path:
    """Path of the venv's python, made on first use."""
    key = hashlib.sha256("\n".join(PINS + [sys.version]).encode()).hexdigest()[:12]
    venv = CACHE / ("bench-%s" % key)
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
                       check=True)
        (venv / ".complete").write_text("\n".join(PINS) + "\n")
    return python


if __name__ == "__main__":
    print(ensure())
