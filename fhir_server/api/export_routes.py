"""Bulk Data export (FHIR Bulk Data Access 2.0.0, asynchronous request pattern): kick-off at
system, group and patient level, status polling, cancellation, file download
(fhir_server.export; docs/ARCHITECTURE.md, "Patient data export").

Every answer here is about the store's job document, so any server process answers it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fhir_server.api.caller import request_caller
from fhir_server.api.instance_routes import repository
from fhir_server.api.responses import base_url, fhir_response, json_response
from fhir_server.errors import FhirError, information, operation_outcome
from fhir_server.export import kickoff
from fhir_server.export.jobs import COMPLETED, ClientBusy, ExportJobs
from fhir_server.export.runner import Exporter
from fhir_server.search.compartment import patient_id

router = APIRouter()
# What a client waits before polling again, and before asking again when it has an export running.
POLL_SECONDS = 2
BUSY_SECONDS = 30
STATUS = "$export-status"
FILE = "$export-file"


def _exporter(request: Request) -> Exporter:
    return request.app.state.exporter


def _jobs(request: Request) -> ExportJobs:
    jobs = _exporter(request).jobs
    assert jobs is not None
    return jobs


def _members(group: dict[str, Any]) -> list[str]:
    """The Patient ids a Group lists as active members (R4 Group.member.entity)."""
    found: list[str] = []
    for member in group.get("member") or []:
        if not isinstance(member, dict) or member.get("inactive") is True:
            continue
        patient = patient_id(member.get("entity"))
        if patient is not None and patient not in found:
            found.append(patient)
    return found


async def _kickoff(request: Request, level: str, patients: list[str] | None = None) -> Response:
    caller = request_caller(request)
    repo = repository(request)
    # Patient and group level: the Patient compartment, and the Binaries of the records' documents
    # (outside the R4 compartment, but in the record: their `pat` is their document's).
    available = sorted(repo.resource_types) if level == "system" else [*repo.engine.compartment.types(), "Binary"]
    asked = kickoff.parse(caller, level, request.query_params.multi_items(), request.headers.get("prefer", ""),
                          available)
    try:
        job_id = await _jobs(request).create(caller, asked.job(str(request.url), patients))
    except ClientBusy:
        busy = FhirError(429, "throttled", "This client already has a bulk export running; wait for it (or cancel it "
                                           "with DELETE on its status URL) before starting another")
        return fhir_response(request, operation_outcome(busy.issues), status=429,
                             headers={"Retry-After": str(BUSY_SECONDS)})
    _exporter(request).wake()
    location = f"{base_url(request)}/{STATUS}/{job_id}"
    note = f"Export accepted; poll {location}"
    if asked.ignored:
        note += f" (ignored: {', '.join(asked.ignored)})"
    return fhir_response(request, information(note), status=202, headers={"Content-Location": location})


@router.get("/fhir/$export", summary="Bulk export of the whole server (Bulk Data 2.0.0 system level)")
async def export_system(request: Request) -> Response:
    return await _kickoff(request, "system")


@router.get("/fhir/Patient/$export", summary="Bulk export of every patient's compartment (patient level)")
async def export_patients(request: Request) -> Response:
    kickoff.check_caller(request_caller(request))
    return await _kickoff(request, "patient")


@router.get("/fhir/Group/{group_id}/$export", summary="Bulk export of a Group's patients' compartments")
async def export_group(request: Request, group_id: str) -> Response:
    kickoff.check_caller(request_caller(request))
    group = await repository(request).read(request_caller(request), "Group", group_id)
    return await _kickoff(request, "group", _members(group.resource or {}))


async def _own_job(request: Request, job_id: str) -> dict[str, Any]:
    job = await _jobs(request).get(job_id, request_caller(request))
    if job is None:
        # Unknown, cancelled, expired, or another client's: the same answer.
        raise FhirError(404, "not-found", f"No bulk export {job_id} for this client")
    return job


def _manifest(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    files = f"{base_url(request)}/{FILE}/{job['_id']}"
    return {
        "transactionTime": job["transactionTime"],
        "request": job["request"],
        "requiresAccessToken": True,
        "output": [{"type": f["type"], "url": f"{files}/{f['file']}", "count": f["count"]} for f in job["output"]],
        "error": [{"type": f["type"], "url": f"{files}/{f['file']}", "count": f["count"]} for f in job["error"]],
    }


@router.get(f"/fhir/{STATUS}/{{job_id}}", summary="Status of a bulk export: 202 while running, 200 with its manifest")
async def export_status(request: Request, job_id: str) -> Response:
    job = await _own_job(request, job_id)
    if job["state"] != COMPLETED:
        return Response(status_code=202, headers={"X-Progress": job.get("progress") or job["state"],
                                                  "Retry-After": str(POLL_SECONDS)})
    return json_response(_manifest(request, job), 200, "application/json",
                         {"Expires": formatdate(job["expires"], usegmt=True)})


@router.delete(f"/fhir/{STATUS}/{{job_id}}", summary="Cancel a bulk export and delete its files")
async def export_cancel(request: Request, job_id: str) -> Response:
    job = await _own_job(request, job_id)
    await _jobs(request).remove(job)
    return fhir_response(request, information(f"Bulk export {job_id} cancelled; its files are deleted"), status=202)


@router.get(f"/fhir/{FILE}/{{job_id}}/{{file_no}}", summary="One NDJSON file of a completed bulk export",
            responses={200: {"content": {"application/fhir+ndjson": {}}}})
async def export_file(request: Request, job_id: str, file_no: str) -> Response:
    job = await _own_job(request, job_id)
    files = [*(job.get("output") or []), *(job.get("error") or [])]
    described = next((f for f in files if str(f["file"]) == file_no), None)
    if job["state"] != COMPLETED or described is None or job["expires"] < time.time():
        raise FhirError(404, "not-found", f"No file {file_no} in bulk export {job_id}")
    jobs = _jobs(request)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in jobs.read_file(job_id, described["file"], described["chunks"]):
            yield chunk

    return StreamingResponse(body(), media_type=kickoff.NDJSON, headers={"Content-Length": str(described["bytes"])})
