"""The MLLP listener on a real socket, with a handler written here: framing, size, abuse, concurrency."""

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

from fhir_server.ingest.mllp import frame, mllp_send, read_frame, start_mllp_server


async def digest(message: bytes) -> bytes:
    return b"sha256:" + hashlib.sha256(message).hexdigest().encode()


def run(scenario: Callable[[int], Awaitable[None]], handler=digest, max_message_bytes: int = 64 * 1024 * 1024) -> None:
    async def main() -> None:
        server = await start_mllp_server("127.0.0.1", 0, handler, max_message_bytes)
        port = server.sockets[0].getsockname()[1]
        try:
            await scenario(port)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


async def expect_alive(port: int) -> None:
    assert await mllp_send("127.0.0.1", port, b"MSH|ping") == await digest(b"MSH|ping")


def test_many_messages_on_one_connection_are_answered_in_order():
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        messages = [f"MSH|{i}".encode() for i in range(5)]
        writer.write(b"".join(frame(m) for m in messages))
        await writer.drain()
        answers = [await read_frame(reader) for _ in messages]
        assert answers == [await digest(m) for m in messages]
        writer.close()
        await writer.wait_closed()

    run(scenario)


def test_a_20_mb_message_arrives_whole():
    big = b"MSH|^~\\&|BIG\rOBX|1|ED|x||^AP^PDF^Base64^" + b"QUJD" * (5 * 1024 * 1024) + b"\r"

    async def scenario(port: int) -> None:
        assert len(big) > 20 * 1024 * 1024
        assert await mllp_send("127.0.0.1", port, big) == await digest(big)

    run(scenario)


def test_garbage_before_the_start_block_is_skipped():
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\r\nnoise" + frame(b"MSH|1") + b"\x00more noise" + frame(b"MSH|2"))
        await writer.drain()
        assert await read_frame(reader) == await digest(b"MSH|1")
        assert await read_frame(reader) == await digest(b"MSH|2")
        writer.close()
        await writer.wait_closed()

    run(scenario)


def test_a_restarted_frame_keeps_only_the_last_message():
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0bMSH|abandoned" + frame(b"MSH|kept"))
        await writer.drain()
        assert await read_frame(reader) == await digest(b"MSH|kept")
        writer.close()
        await writer.wait_closed()

    run(scenario)


def test_an_oversized_frame_closes_only_its_connection():
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(b"MSH|" + b"x" * 4096))
        await writer.drain()
        assert await reader.read() == b""  # closed without an answer
        writer.close()
        await expect_alive(port)

    run(scenario, max_message_bytes=1024)


def test_end_of_stream_inside_a_frame_does_not_harm_the_listener():
    async def scenario(port: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0bMSH|half a mess")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await expect_alive(port)

    run(scenario)


def test_a_failing_handler_closes_the_connection_and_the_listener_stays_up():
    async def handler(message: bytes) -> bytes:
        if message == b"MSH|boom":
            raise RuntimeError("handler bug")
        return await digest(message)

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(b"MSH|boom"))
        await writer.drain()
        assert await reader.read() == b""
        writer.close()
        await expect_alive(port)

    run(scenario, handler=handler)


def test_many_concurrent_connections():
    async def slow(message: bytes) -> bytes:
        await asyncio.sleep(0)
        return await digest(message)

    async def scenario(port: int) -> None:
        messages = [f"MSH|{i}".encode() for i in range(100)]
        answers = await asyncio.gather(*(mllp_send("127.0.0.1", port, m) for m in messages))
        assert list(answers) == [await digest(m) for m in messages]

    run(scenario, handler=slow)
