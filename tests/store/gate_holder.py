"""Another process on the same data dir, as a CLI command that writes would be: it takes the gate
(`write` or `bundle`), prints "held", and lets go when a line arrives on stdin.

    python -m tests.store.gate_holder DATA_DIR write|bundle
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fhir_server.storage.gate import Gate


async def hold(data_dir: Path, kind: str) -> None:
    gate = Gate(enabled=True, lock_dir=data_dir)
    async with gate.write(exclude_readers=kind == "bundle"):
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


if __name__ == "__main__":
    asyncio.run(hold(Path(sys.argv[1]), sys.argv[2]))
