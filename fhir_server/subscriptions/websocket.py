"""The R4 websocket channel: a client connects to WEBSOCKET_PATH, sends `bind <subscription id>`,
is answered `bound <id>`, then receives `ping <id>` for each notification of that subscription.

Any process may serve the socket: the delivery worker (one process, the lease holder) records each
ping in the store, and every process forwards the pings of the subscriptions its sockets are
bound to, polling the store. A ping carries no content (R4: the client then searches with its own
token), so binding needs no token; a subscription's id is server-assigned and unguessable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from fhir_server.subscriptions.store import PINGS, SUBSCRIBERS

WEBSOCKET_PATH = "/fhir/websocket"
# R4's CapabilityStatement extension naming the websocket URL of a server.
WEBSOCKET_EXTENSION = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket"
POLL_SECONDS = 0.2

router = APIRouter()


@router.websocket(WEBSOCKET_PATH)
async def subscription_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    database = websocket.app.state.repository.database
    # Subscription id -> the last ping forwarded (nanoseconds; pings before the bind are not for this socket).
    bound: dict[str, int] = {}
    sending = asyncio.Lock()

    async def say(text: str) -> None:
        async with sending:
            await websocket.send_text(text)

    async def forward() -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for subscription, last in list(bound.items()):
                async with database.gate.read():
                    pings = await database.collection(PINGS).find(
                        {"sub": subscription, "n": {"$gt": last}}).sort("n", 1).to_list(None)
                for ping in pings:
                    await say(f"ping {subscription}")
                    bound[subscription] = max(bound[subscription], ping["n"])

    forwarding = asyncio.create_task(forward())
    try:
        while True:
            command, _, subscription = (await websocket.receive_text()).strip().partition(" ")
            subscription = subscription.strip()
            if command != "bind" or not subscription:
                await say("error expected: bind <Subscription id>")
                continue
            async with database.gate.read():
                found = await database.collection(SUBSCRIBERS).find_one({"_id": subscription})
            if found is None or (found.get("channel") or {}).get("type") != "websocket":
                await say(f"error {subscription} is not a websocket Subscription")
                continue
            bound[subscription] = time.time_ns()
            await say(f"bound {subscription}")
    except WebSocketDisconnect:
        pass
    finally:
        forwarding.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forwarding
