"""`python -m benchmarks.read_cpu` end to end, tiny: the server's reads and the bare route's are all
answered 200 (it stops at the first other status) and it says how much CPU each took. Run in a
process of its own: it settles the garbage collector of its process as `serve` does."""

from __future__ import annotations

import re
import subprocess
import sys

LINE = re.compile(r"run 1: server (read|vread) (\d+\.\d{3}) ms CPU, bare route (\d+\.\d{3}) ms \(\d+% of the server's cost\)")


def test_read_and_vread_cpu_are_measured_beside_the_bare_route() -> None:
    for kind in ("read", "vread"):
        result = subprocess.run([sys.executable, "-m", "benchmarks.read_cpu", "--reads", "32",
                                 *(["--vread"] if kind == "vread" else [])],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        found = LINE.fullmatch(result.stdout.strip())
        assert found is not None, result.stdout
        assert found.group(1) == kind
        assert float(found.group(2)) > 0 and float(found.group(3)) > 0
