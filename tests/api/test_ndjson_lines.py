"""How `$import` cuts its body into lines (fhir_server.operations.bulk_import.ndjson_lines): the
same lines and numbers however the body arrives in chunks, gzip or not, and a refusal for a line
over the limit or a gzip body cut short."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest

from fhir_server.errors import FhirError
from fhir_server.operations.bulk_import import ndjson_lines

BODY = b'{"a":1}\n\n{"b":2}\r\n{"c":3}'
LINES = [(1, b'{"a":1}'), (3, b'{"b":2}\r'), (4, b'{"c":3}')]


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _lines(data: bytes, size: int, gzipped: bool = False, max_line: int = 100) -> list[tuple[int, bytes]]:
    async def collect() -> list[tuple[int, bytes]]:
        return [line async for line in ndjson_lines(_chunks(data, size), gzipped, max_line)]
    return asyncio.run(collect())


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_lines_and_their_numbers_do_not_depend_on_chunks(size: int) -> None:
    assert _lines(BODY, size) == LINES
    assert _lines(gzip.compress(BODY), size, gzipped=True) == LINES


def test_a_line_over_the_limit_and_a_cut_gzip_body_are_refused() -> None:
    with pytest.raises(FhirError) as long_line:
        _lines(b"x" * 200, 10)
    assert long_line.value.status == 413
    with pytest.raises(FhirError) as cut:
        _lines(gzip.compress(BODY)[:-8], 5, gzipped=True)
    assert cut.value.status == 400
