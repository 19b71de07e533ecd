from __future__ import annotations

import random

import httpx
import pytest

from tests.mhd.documents import patient


@pytest.fixture
def known_patient(fhir: httpx.Client) -> dict:
    ins = "2" + "".join(random.choice("0123456789") for _ in range(14))
    return fhir.post("/Patient", json=patient(ins)).json()


@pytest.fixture
def master_id() -> str:
    return f"1.2.250.1.999.1.1.7.{random.randrange(10**12)}"
