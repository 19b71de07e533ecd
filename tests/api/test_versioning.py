"""If-Match, concurrent updates, history with _since/_count and paging."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.test_crud import patient


def test_stale_if_match_answers_412_and_changes_nothing(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    pid = created["id"]
    ok = fhir.put(f"/Patient/{pid}", json=created | {"gender": "male"}, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.json()["meta"]["versionId"] == "2"
    stale = fhir.put(f"/Patient/{pid}", json=created | {"gender": "female"}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    current = fhir.get(f"/Patient/{pid}").json()
    assert current["gender"] == "male" and current["meta"]["versionId"] == "2"


def test_concurrent_updates_never_lose_one_another(server, unique: str) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/fhir+json"}
    with server.client(server.base_url, headers=headers, timeout=60) as client:
        created = client.post("/Patient", json=patient(unique)).json()
        pid = created["id"]

        def add_name(i: int) -> int:
            # read-modify-write with If-Match, retrying on 412: the optimistic-locking contract
            for _ in range(200):
                current = client.get(f"/Patient/{pid}")
                body = current.json()
                body["name"] = body["name"] + [{"family": f"N{i}"}]
                answer = client.put(f"/Patient/{pid}", json=body, headers={"If-Match": current.headers["ETag"]})
                if answer.status_code == 200:
                    return i
                assert answer.status_code == 412
            raise AssertionError("never succeeded")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(add_name, range(16)))
        final = client.get(f"/Patient/{pid}").json()
        families = {n["family"] for n in final["name"]}
        assert {f"N{i}" for i in range(16)} <= families
        assert final["meta"]["versionId"] == "17"


def test_plain_concurrent_updates_each_make_a_version(server, unique: str) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/fhir+json"}
    with server.client(server.base_url, headers=headers, timeout=60) as client:
        created = client.post("/Patient", json=patient(unique)).json()
        pid = created["id"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(lambda i: client.put(f"/Patient/{pid}", json=created | {"birthDate": f"19{10 + i}-01-01"}).status_code, range(20)))
        assert codes == [200] * 20
        history = client.get(f"/Patient/{pid}/_history", params={"_count": 100}).json()
        versions = sorted(int(e["resource"]["meta"]["versionId"]) for e in history["entry"])
        assert versions == list(range(1, 22))


def test_history_levels_since_count_and_paging(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    pid = created["id"]
    for year in range(1990, 1995):
        fhir.put(f"/Patient/{pid}", json=created | {"birthDate": f"{year}-01-01"})
    history = fhir.get(f"/Patient/{pid}/_history", params={"_count": 2}).json()
    assert history["type"] == "history"
    seen = []
    page = history
    while True:
        seen += [int(e["resource"]["meta"]["versionId"]) for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        page = fhir.get(nxt[0]).json()
    assert seen == [6, 5, 4, 3, 2, 1]
    since = fhir.get(f"/Patient/{pid}/_history/3").json()["meta"]["lastUpdated"]
    recent = fhir.get(f"/Patient/{pid}/_history", params={"_since": since}).json()
    assert sorted(int(e["resource"]["meta"]["versionId"]) for e in recent["entry"]) == [3, 4, 5, 6]
    type_level = fhir.get("/Patient/_history", params={"_since": since, "_count": 50}).json()
    assert any(e["resource"]["id"] == pid for e in type_level["entry"] if "resource" in e)
    system = fhir.get("/_history", params={"_since": since, "_count": 50}).json()
    assert any(e.get("resource", {}).get("id") == pid for e in system["entry"])
