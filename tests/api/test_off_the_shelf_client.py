"""An off-the-shelf FHIR client (fhirpy) works against the server."""

from __future__ import annotations

import asyncio

from fhirpy import AsyncFHIRClient

from tests.api.test_crud import INS


def test_fhirpy_create_search_update_delete(server, unique: str) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        client = AsyncFHIRClient(server.base_url, authorization=f"Bearer {server.token}")
        patient = client.resource("Patient", identifier=[{"system": INS, "value": f"9{unique}"}],
                                  name=[{"family": "Leroy", "given": ["Anne"]}], birthDate="1975-03-04")
        await patient.save()
        assert patient.id
        found = await client.resources("Patient").search(identifier=f"{INS}|9{unique}").fetch_all()
        assert [p.id for p in found] == [patient.id]
        patient["gender"] = "female"
        await patient.save()
        fetched = await client.reference("Patient", patient.id).to_resource()
        assert fetched["gender"] == "female" and fetched["meta"]["versionId"] == "2"
        await patient.delete()
        assert await client.resources("Patient").search(identifier=f"{INS}|9{unique}").count() == 0

    asyncio.run(scenario())
