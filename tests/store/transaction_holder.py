"""Another process writing on the server's store in a transaction, as a CLI command that writes
would (`fhir-server enrol` does): it inserts `{"_id": ID}` into COLLECTION in a store transaction
through the server's own Database, prints "open", and commits when a line arrives on stdin, unless
it is killed first.

    python -m tests.store.transaction_holder DATA_DIR DATABASE COLLECTION ID
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from fhir_server.storage.database import Database
from fhir_server.storage.embedded import EmbeddedStore


async def hold(data_dir: Path, name: str, collection: str, document_id: str) -> None:
    database = Database(EmbeddedStore(data_dir).url_file.read_text(encoding="ascii").strip(), name,
                        data_dir=data_dir)
    await database.connect()

    async def work(session: Any) -> None:
        await database.db[collection].insert_one({"_id": document_id}, session=session)
        print("open", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    try:
        await database.in_transaction(work)
    finally:
        await database.close()
    print("committed", flush=True)


if __name__ == "__main__":
    asyncio.run(hold(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
