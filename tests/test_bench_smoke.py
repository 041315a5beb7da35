"""The core benchmark runs end to end on tiny sizes and writes well-formed results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_core.py"


def test_core_benchmark_quick_run(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    results = json.loads((tmp_path / "core.json").read_text())
    for kind in ("dispatch", "dispatch_identity_resolver"):
        assert set(results[kind]) == {"10", "100"}
        assert all(r["median_us"] > 0 for r in results[kind].values())
    assert results["registration"]["per_second"] > 0
    assert set(results["strawberry_dispatch"]) == {"10"}
    assert (tmp_path / "core.md").read_text().startswith("# Core benchmarks")
