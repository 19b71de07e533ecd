"""What each kind of entry of a transaction or batch Bundle does to the record (FHIR R4
http.html#transaction): the effect is checked by reading the record afterwards, not only the
status the response Bundle claims."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from tests.api.test_crud import INS, patient


def transaction(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def batch(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


def delete(url: str) -> dict:
    return {"request": {"method": "DELETE", "url": url}}


def statuses(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Bundle" and body["type"] in ("transaction-response", "batch-response")
    return [e["response"]["status"] for e in body["entry"]]


def test_delete_entry_deletes(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    kept = fhir.post("/Patient", json=patient(unique, family="Gardé")).json()
    assert statuses(fhir.post("", json=transaction(delete(f"Patient/{created['id']}")))) == ["204 No Content"]
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410
    history = fhir.get(f"/Patient/{created['id']}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert fhir.get(f"/Patient/{kept['id']}").status_code == 200


def test_conditional_delete_entry_deletes_the_one_match(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(delete(f"Patient?identifier={INS}|1{unique}")))
    assert statuses(response) == ["204 No Content"]
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410


def test_conditional_delete_entry_matching_two_is_refused_and_deletes_nothing(fhir: httpx.Client, unique: str) -> None:
    first = fhir.post("/Patient", json=patient(unique)).json()
    second = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(delete(f"Patient?identifier={INS}|1{unique}")))
    assert response.status_code == 412, response.text
    assert [fhir.get(f"/Patient/{p['id']}").status_code for p in (first, second)] == [200, 200]


def test_delete_entry_in_a_batch_deletes(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    assert statuses(fhir.post("", json=batch(delete(f"Patient/{created['id']}")))) == ["204 No Content"]
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410


def test_delete_of_what_does_not_exist_is_not_an_error(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("", json=transaction(delete(f"Patient/nothing-{unique}"), delete(f"Patient?identifier={INS}|none{unique}")))
    assert statuses(response) == ["204 No Content", "204 No Content"]
    assert fhir.get(f"/Patient/nothing-{unique}").status_code == 404


def test_delete_runs_before_the_create_of_the_same_bundle(fhir: httpx.Client, unique: str) -> None:
    """The spec's order (DELETE, POST, PUT/PATCH, GET) whatever the order of the entries: the
    conditional delete removes the old patient, not the one the same bundle creates."""
    old = fhir.post("/Patient", json=patient(unique, family="Ancien")).json()
    response = fhir.post("", json=transaction(
        {"resource": patient(unique, family="Nouveau"), "request": {"method": "POST", "url": "Patient"}},
        delete(f"Patient?identifier={INS}|1{unique}"),
    ))
    assert statuses(response) == ["201 Created", "204 No Content"]
    assert fhir.get(f"/Patient/{old['id']}").status_code == 410
    found = fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()
    assert [e["resource"]["name"][0]["family"] for e in found["entry"]] == ["Nouveau"]


def test_delete_entry_without_id_or_criteria_is_refused(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(delete(f"Patient/{created['id']}"), delete("Patient")))
    refused(response, 400, "invalid", 1, "DELETE needs an id or criteria")
    assert fhir.get(f"/Patient/{created['id']}").status_code == 200


# ---------------------------------------------------------------- PATCH entries

def json_patch_entry(url: str, operations: list[dict], content_type: str = "application/json-patch+json", **request: str) -> dict:
    binary = {"resourceType": "Binary", "contentType": content_type,
              "data": base64.b64encode(json.dumps(operations).encode()).decode()}
    return {"resource": binary, "request": {"method": "PATCH", "url": url, **request}}


def refused(response: httpx.Response, status: int, code: str, entry: int, words: str) -> dict:
    assert response.status_code == status, response.text
    issue = response.json()["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", code), issue
    assert issue["expression"][0].startswith(f"Bundle.entry[{entry}]"), issue
    assert issue["diagnostics"].startswith(f"Bundle.entry[{entry}]") and words in issue["diagnostics"], issue
    return issue


def test_patch_entry_is_applied(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(json_patch_entry(f"Patient/{created['id']}", [
        {"op": "replace", "path": "/birthDate", "value": "1999-12-31"}])))
    [entry] = response.json()["entry"]
    assert entry["response"]["status"] == "200 OK"
    assert entry["response"]["location"] == f"Patient/{created['id']}/_history/2"
    assert entry["response"]["etag"] == 'W/"2"'
    assert entry["fullUrl"].endswith(f"/fhir/Patient/{created['id']}")
    current = fhir.get(f"/Patient/{created['id']}").json()
    assert (current["birthDate"], current["meta"]["versionId"]) == ("1999-12-31", "2")


def test_conditional_patch_entry_patches_the_one_match(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(json_patch_entry(f"Patient?identifier={INS}|1{unique}", [
        {"op": "add", "path": "/gender", "value": "female"}])))
    assert statuses(response) == ["200 OK"]
    assert fhir.get(f"/Patient/{created['id']}").json()["gender"] == "female"
    fhir.post("/Patient", json=patient(unique))
    twice = fhir.post("", json=transaction(json_patch_entry(f"Patient?identifier={INS}|1{unique}", [
        {"op": "add", "path": "/gender", "value": "male"}])))
    refused(twice, 412, "multiple-matches", 0, "match more than one Patient")
    assert fhir.get(f"/Patient/{created['id']}").json()["gender"] == "female"


def test_patch_entry_with_a_stale_if_match_is_refused(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    fhir.put(f"/Patient/{created['id']}", json=created | {"gender": "other"})
    response = fhir.post("", json=transaction(json_patch_entry(
        f"Patient/{created['id']}", [{"op": "remove", "path": "/gender"}], ifMatch='W/"1"')))
    refused(response, 412, "conflict", 0, "version 1")
    assert fhir.get(f"/Patient/{created['id']}").json()["gender"] == "other"
    fresh = fhir.post("", json=transaction(json_patch_entry(
        f"Patient/{created['id']}", [{"op": "remove", "path": "/gender"}], ifMatch='W/"2"')))
    assert statuses(fresh) == ["200 OK"]


def test_patch_entry_that_is_not_base64_json_is_refused(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    entry = json_patch_entry(f"Patient/{created['id']}", [])
    entry["resource"]["data"] = base64.b64encode(b"[{not json").decode()
    refused(fhir.post("", json=transaction(entry)), 400, "invalid", 0, "not base64 JSON")
    entry["resource"]["data"] = "%%% not base64 %%%"
    refused(fhir.post("", json=transaction(entry)), 400, "invalid", 0, "not base64 JSON")
    assert fhir.get(f"/Patient/{created['id']}").json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize("resource", [
    {"resourceType": "Binary", "contentType": "text/plain",
     "data": base64.b64encode(b'[{"op": "remove", "path": "/birthDate"}]').decode()},
    {"resourceType": "Binary", "data": base64.b64encode(b'[{"op": "remove", "path": "/birthDate"}]').decode()},
])
def test_patch_entry_without_a_json_patch_binary_is_refused(fhir: httpx.Client, unique: str, resource: dict) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction({"resource": resource, "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}}))
    refused(response, 400, "not-supported", 0, "JSON Patch")
    assert fhir.get(f"/Patient/{created['id']}").json()["birthDate"] == "1980-05-17"


def test_fhirpath_patch_entry_without_a_path_is_refused(fhir: httpx.Client, unique: str) -> None:
    # A Parameters is a FHIRPath Patch (fhirpatch.html); its delete operation needs a path.
    created = fhir.post("/Patient", json=patient(unique)).json()
    patch = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]}]}
    response = fhir.post("", json=transaction({"resource": patch, "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}}))
    refused(response, 400, "invalid", 0, "")
    assert fhir.get(f"/Patient/{created['id']}").json()["birthDate"] == "1980-05-17"


# ---------------------------------------------------------------- GET entries and the order of entries

def test_get_entries_read_and_vread(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    fhir.put(f"/Patient/{created['id']}", json=created | {"gender": "male"})
    response = fhir.post("", json=transaction(
        {"request": {"method": "GET", "url": f"Patient/{created['id']}"}},
        {"request": {"method": "GET", "url": f"Patient/{created['id']}/_history/1"}},
    ))
    current, first = response.json()["entry"]
    assert current["response"]["status"] == "200 OK" and current["response"]["etag"] == 'W/"2"'
    assert current["resource"]["gender"] == "male" and current["response"]["lastModified"] == current["resource"]["meta"]["lastUpdated"]
    assert first["response"]["etag"] == 'W/"1"' and "gender" not in first["resource"]


def test_get_entry_runs_after_the_writes_of_its_bundle(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction(
        {"request": {"method": "GET", "url": f"Patient/{created['id']}"}},
        {"resource": created | {"gender": "female"}, "request": {"method": "PUT", "url": f"Patient/{created['id']}"}},
    ))
    read, written = response.json()["entry"]
    assert written["response"]["status"] == "200 OK"
    assert read["resource"]["gender"] == "female" and read["resource"]["meta"]["versionId"] == "2"


def test_get_entry_of_what_does_not_exist_fails_the_transaction(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("", json=transaction(
        {"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": f"Patient/none-{unique}"}},
    ))
    refused(response, 404, "not-found", 1, f"none-{unique}")
    assert fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()["total"] == 0


def test_search_entry_is_refused_inside_a_transaction(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("", json=transaction({"request": {"method": "GET", "url": f"Patient?identifier={INS}|1{unique}"}}))
    refused(response, 400, "not-supported", 0, "searches are supported in batch")


def test_batch_search_and_read_entries(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=batch(
        {"request": {"method": "GET", "url": f"Patient?identifier={INS}|1{unique}&_count=5"}},
        {"request": {"method": "GET", "url": f"Patient/{created['id']}"}},
        {"request": {"method": "GET", "url": f"Patient/{created['id']}/_history/1"}},
    ))
    assert statuses(response) == ["200 OK", "200 OK", "200 OK"]
    searchset, read, vread = (e["resource"] for e in response.json()["entry"])
    assert searchset["type"] == "searchset" and [e["resource"]["id"] for e in searchset["entry"]] == [created["id"]]
    assert read["id"] == vread["id"] == created["id"]


def test_batch_entry_refused_before_running_answers_alone(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=batch(delete("Patient"), delete(f"Patient/{created['id']}")))
    refusal, deleted = response.json()["entry"]
    assert refusal["response"]["status"] == "400"
    assert "DELETE needs an id or criteria" in refusal["response"]["outcome"]["issue"][0]["diagnostics"]
    assert deleted["response"]["status"] == "204 No Content"
    assert fhir.get(f"/Patient/{created['id']}").status_code == 410


def test_batch_create_resolves_its_own_conditional_reference(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": f"Patient?identifier={INS}|1{unique}"}}
    response = fhir.post("", json=batch({"resource": encounter, "request": {"method": "POST", "url": "Encounter"}}))
    assert statuses(response) == ["201 Created"]
    location = response.json()["entry"][0]["response"]["location"].split("/_history")[0]
    assert fhir.get(f"/{location}").json()["subject"]["reference"] == f"Patient/{created['id']}"


# ---------------------------------------------------------------- PUT and POST entries

def test_put_entry_takes_its_id_from_the_url(fhir: httpx.Client, unique: str) -> None:
    response = fhir.post("", json=transaction({"resource": patient(unique), "request": {"method": "PUT", "url": f"Patient/put-{unique}"}}))
    assert statuses(response) == ["201 Created"]
    assert response.json()["entry"][0]["response"]["location"] == f"Patient/put-{unique}/_history/1"
    assert fhir.get(f"/Patient/put-{unique}").json()["identifier"][0]["value"] == f"1{unique}"


def test_put_entry_whose_body_names_another_id_is_refused(fhir: httpx.Client, unique: str) -> None:
    entry = {"resource": patient(unique) | {"id": f"other-{unique}"}, "request": {"method": "PUT", "url": f"Patient/put-{unique}"}}
    issue = refused(fhir.post("", json=transaction(entry)), 400, "invalid", 0, f"other-{unique}")
    assert issue["expression"] == ["Bundle.entry[0]"]
    assert fhir.get(f"/Patient/put-{unique}").status_code == 404 and fhir.get(f"/Patient/other-{unique}").status_code == 404


def test_conditional_put_entry_creates_updates_or_refuses(fhir: httpx.Client, unique: str) -> None:
    def put(family: str) -> httpx.Response:
        return fhir.post("", json=transaction({"resource": patient(unique, family=family),
                                                "request": {"method": "PUT", "url": f"Patient?identifier={INS}|1{unique}"}}))

    assert statuses(put("Premier")) == ["201 Created"]
    assert statuses(put("Second")) == ["200 OK"]
    [only] = fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()["entry"]
    assert (only["resource"]["name"][0]["family"], only["resource"]["meta"]["versionId"]) == ("Second", "2")
    fhir.post("/Patient", json=patient(unique, family="Intrus"))
    refused(put("Troisième"), 412, "multiple-matches", 0, "more than one")


def test_if_none_exist_matching_two_is_refused(fhir: httpx.Client, unique: str) -> None:
    fhir.post("/Patient", json=patient(unique))
    fhir.post("/Patient", json=patient(unique))
    entry = {"resource": patient(unique), "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={INS}|1{unique}"}}
    refused(fhir.post("", json=transaction(entry)), 412, "duplicate", 0, "more than one")
    assert fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()["total"] == 2


def test_invalid_resource_in_an_entry_is_refused_naming_its_element(fhir: httpx.Client, unique: str) -> None:
    entry = {"resource": patient(unique) | {"birthDate": "17/05/1980"}, "request": {"method": "POST", "url": "Patient"}}
    response = fhir.post("", json=transaction({"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}}, entry))
    assert response.status_code == 400, response.text
    assert any(e == "Bundle.entry[1].resource.birthDate" for i in response.json()["issue"] for e in i.get("expression", []))
    assert fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()["total"] == 0


def test_entries_sharing_a_full_url_are_refused(fhir: httpx.Client, unique: str) -> None:
    urn = f"urn:uuid:{uuid.uuid4()}"
    entries = [{"fullUrl": urn, "resource": patient(unique), "request": {"method": "POST", "url": "Patient"}} for _ in range(2)]
    response = fhir.post("", json=transaction(*entries))
    assert response.status_code == 400, response.text
    assert response.json()["issue"][0]["code"] == "invalid"
    assert "share a fullUrl" in response.json()["issue"][0]["diagnostics"]
    assert fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()["total"] == 0


@pytest.mark.parametrize("reference", ["urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100", "urn:oid:1.2.3.4"])
def test_reference_to_an_entry_the_bundle_lacks_is_refused(fhir: httpx.Client, unique: str, reference: str) -> None:
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": reference}}
    response = fhir.post("", json=transaction({"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}},
                                              {"resource": encounter, "request": {"method": "POST", "url": "Encounter"}}))
    refused(response, 400, "not-found", 1, reference)
    assert fhir.get("/Patient", params={"identifier": f"{INS}|1{unique}"}).json()["total"] == 0


def test_responses_carry_resources_only_when_asked(fhir: httpx.Client, unique: str) -> None:
    entry = {"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}}
    plain = fhir.post("", json=transaction(entry)).json()["entry"][0]
    assert "resource" not in plain
    asked = fhir.post("", json=transaction(entry), headers={"Prefer": "return=representation"}).json()["entry"][0]
    assert asked["resource"]["identifier"][0]["value"] == f"1{unique}"
    assert asked["fullUrl"].endswith(f"/fhir/Patient/{asked['resource']['id']}")
    assert asked["response"]["lastModified"] == asked["resource"]["meta"]["lastUpdated"]


def test_read_only_transaction_needs_no_write(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    response = fhir.post("", json=transaction({"request": {"method": "GET", "url": f"Patient/{created['id']}"}}))
    assert statuses(response) == ["200 OK"]
    assert len(fhir.get(f"/Patient/{created['id']}/_history").json()["entry"]) == 1


def test_batch_search_pages_and_links_like_a_search(fhir: httpx.Client, unique: str) -> None:
    """No _count: the server's default page of 20; unknown parameters are ignored (lenient), as in GET."""
    entries = [{"resource": patient(unique, family=f"Page{n}"), "request": {"method": "POST", "url": "Patient"}} for n in range(21)]
    assert fhir.post("", json=transaction(*entries)).status_code == 200
    response = fhir.post("", json=batch(
        {"request": {"method": "GET", "url": f"Patient?identifier={INS}|1{unique}&no-such-parameter=x"}},
        {"request": {"method": "HEAD", "url": f"Patient?identifier={INS}|1{unique}&_count=2"}},
    ))
    body = response.json()
    assert (body["resourceType"], body["type"]) == ("Bundle", "batch-response")
    assert statuses(response) == ["200 OK", "200 OK"]
    page, small = (e["resource"] for e in body["entry"])
    matches = [e for e in page["entry"] if e["search"]["mode"] == "match"]
    assert (page["resourceType"], page["type"], len(matches)) == ("Bundle", "searchset", 20)
    self_link = next(link["url"] for link in page["link"] if link["relation"] == "self")
    assert self_link.startswith(str(fhir.base_url).rstrip("/") + "/Patient?") and "no-such-parameter" not in self_link
    assert "_count=20" in self_link
    assert any(link["relation"] == "next" for link in page["link"])
    assert len(small["entry"]) == 2


def test_get_entry_of_a_binary_carries_its_data(fhir: httpx.Client) -> None:
    stored = fhir.post("/Binary", content=b"%PDF-1.4 test", headers={"Content-Type": "application/pdf"}).json()
    for bundle in (transaction, batch):
        response = fhir.post("", json=bundle({"request": {"method": "GET", "url": f"Binary/{stored['id']}"}}))
        resource = response.json()["entry"][0]["resource"]
        assert base64.b64decode(resource["data"]) == b"%PDF-1.4 test" and resource["contentType"] == "application/pdf"


def test_batch_search_with_has_follows_this_servers_references(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": f"Patient/{created['id']}"}}
    fhir.post("/Encounter", json=encounter)
    response = fhir.post("", json=batch({"request": {"method": "GET",
                                                     "url": f"Patient?identifier={INS}|1{unique}&_has:Encounter:subject:status=planned"}}))
    assert statuses(response) == ["200 OK"]
    assert [e["resource"]["id"] for e in response.json()["entry"][0]["resource"]["entry"]] == [created["id"]]


def test_batch_entry_with_a_reference_to_nothing_is_refused_alone(fhir: httpx.Client, unique: str) -> None:
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020101"}}
    response = fhir.post("", json=batch({"resource": encounter, "request": {"method": "POST", "url": "Encounter"}},
                                        {"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}}))
    refusal, created = response.json()["entry"]
    assert refusal["response"]["status"] == "400"
    issue = refusal["response"]["outcome"]["issue"][0]
    assert issue["code"] == "not-found" and issue["expression"] == ["Bundle.entry[0]"]
    assert created["response"]["status"] == "201 Created"


def test_patch_entry_without_data_is_refused(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique)).json()
    entry = json_patch_entry(f"Patient/{created['id']}", [])
    del entry["resource"]["data"]
    refused(fhir.post("", json=transaction(entry)), 400, "invalid", 0, "not base64 JSON")


def test_conditional_reference_refusals_say_what_they_found(fhir: httpx.Client, unique: str) -> None:
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": f"Patient?identifier={INS}|1{unique}"}}
    entry = {"resource": encounter, "request": {"method": "POST", "url": "Encounter"}}
    refused(fhir.post("", json=transaction(entry)), 404, "not-found", 0, "matches no Patient")
    fhir.post("/Patient", json=patient(unique))
    fhir.post("/Patient", json=patient(unique))
    refused(fhir.post("", json=transaction(entry)), 412, "multiple-matches", 0, "matches more than one Patient")


def test_conditional_reference_splits_at_the_first_question_mark(fhir: httpx.Client, unique: str) -> None:
    created = fhir.post("/Patient", json=patient(unique) | {"identifier": [{"system": INS, "value": f"1{unique}?x"}]}).json()
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": f"Patient?identifier={INS}|1{unique}?x"}}
    response = fhir.post("", json=transaction({"resource": encounter, "request": {"method": "POST", "url": "Encounter"}}))
    assert statuses(response) == ["201 Created"]
    location = response.json()["entry"][0]["response"]["location"].split("/_history")[0]
    assert fhir.get(f"/{location}").json()["subject"]["reference"] == f"Patient/{created['id']}"


def test_binary_put_entry_keeps_its_bytes(fhir: httpx.Client, unique: str) -> None:
    binary = {"resourceType": "Binary", "contentType": "text/plain", "data": base64.b64encode(b"bonjour").decode()}
    response = fhir.post("", json=transaction({"resource": binary, "request": {"method": "PUT", "url": f"Binary/txt-{unique}"}}))
    assert statuses(response) == ["201 Created"]
    assert fhir.get(f"/Binary/txt-{unique}", headers={"Accept": "text/plain"}).content == b"bonjour"


def test_conditional_create_without_match_gets_a_new_id_each_time(fhir: httpx.Client, unique: str) -> None:
    ids = []
    for n in range(2):
        entry = {"resource": patient(f"{unique}{n}"), "request": {"method": "POST", "url": "Patient",
                                                                  "ifNoneExist": f"identifier={INS}|1{unique}{n}"}}
        response = fhir.post("", json=transaction(entry))
        assert statuses(response) == ["201 Created"]
        ids.append(response.json()["entry"][0]["response"]["location"].split("/")[1])
    assert len(set(ids)) == 2 and "None" not in ids


def test_conditional_put_without_match_creates_at_the_body_id_or_a_new_one(fhir: httpx.Client, unique: str) -> None:
    with_id = {"resource": patient(f"{unique}a") | {"id": f"given-{unique}"},
               "request": {"method": "PUT", "url": f"Patient?identifier={INS}|1{unique}a"}}
    response = fhir.post("", json=transaction(with_id))
    assert response.json()["entry"][0]["response"]["location"] == f"Patient/given-{unique}/_history/1"
    ids = []
    for n in range(2):
        without_id = {"resource": patient(f"{unique}b{n}"), "request": {"method": "PUT", "url": f"Patient?identifier={INS}|1{unique}b{n}"}}
        response = fhir.post("", json=transaction(without_id))
        assert statuses(response) == ["201 Created"]
        ids.append(response.json()["entry"][0]["response"]["location"].split("/")[1])
    assert len(set(ids)) == 2 and "None" not in ids


def test_absolute_reference_to_an_entry_of_the_bundle_becomes_relative(fhir: httpx.Client, unique: str) -> None:
    base = str(fhir.base_url).rstrip("/")
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": f"{base}/Patient/abs-{unique}"}}
    response = fhir.post("", json=transaction(
        {"resource": encounter, "request": {"method": "POST", "url": "Encounter"}},
        {"resource": patient(unique), "request": {"method": "PUT", "url": f"Patient/abs-{unique}"}},
    ))
    assert statuses(response) == ["201 Created", "201 Created"]
    location = response.json()["entry"][0]["response"]["location"].split("/_history")[0]
    assert fhir.get(f"/{location}").json()["subject"]["reference"] == f"Patient/abs-{unique}"


def test_unknown_reference_inside_a_list_names_its_entry(fhir: httpx.Client, unique: str) -> None:
    encounter = {"resourceType": "Encounter", "status": "planned",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "participant": [{"individual": {"reference": "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020102"}}]}
    response = fhir.post("", json=transaction({"resource": patient(unique), "request": {"method": "POST", "url": "Patient"}},
                                              {"resource": encounter, "request": {"method": "POST", "url": "Encounter"}}))
    refused(response, 400, "not-found", 1, "names no entry of the bundle")


def test_entry_whose_resource_is_not_of_its_url_type_is_refused(fhir: httpx.Client, unique: str) -> None:
    practitioner = {"resourceType": "Practitioner", "name": [{"family": f"P{unique}"}]}
    response = fhir.post("", json=transaction({"resource": practitioner, "request": {"method": "POST", "url": "Patient"}}))
    assert response.status_code == 400, response.text
    assert fhir.get("/Practitioner", params={"family": f"P{unique}"}).json()["total"] == 0


def test_invalid_nested_element_is_named_within_its_entry(fhir: httpx.Client, unique: str) -> None:
    entry = {"resource": patient(unique) | {"name": [{"family": 5}]}, "request": {"method": "POST", "url": "Patient"}}
    response = fhir.post("", json=transaction(entry))
    assert response.status_code == 400, response.text
    expressions = [e for i in response.json()["issue"] for e in i.get("expression", [])]
    assert "Bundle.entry[0].resource.name[0].family" in expressions, expressions

