"""pytest setup of the micro-benchmarks: `microbench` (the shared helpers beside this file) is
importable whatever the import mode, and `pytest benchmarks/micro` works from the repo root."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
