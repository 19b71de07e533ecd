"""What one interaction touched, collected while it runs, for its AuditEvent.

The HTTP edge (fhir_server.audit.middleware) and the MLLP listener (fhir_server.audit.mllp) start a
`Trace` for each request or message; the places that see resources pass add to it: the record-open
hook (the records an interaction names, refused ones included), `interactions.output.outgoing`
(each resource that leaves), the record-write hook (each version written) and the bundle processor
(batch or transaction). A context variable carries it, so none of them needs it as a parameter;
outside a request (start-up, the dispatcher) there is none and nothing is collected.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Trace:
    # Patient ids named by the interaction or owning what it touched, in first-seen order.
    patients: dict[str, None] = field(default_factory=dict)
    # "Type/id" -> the patient whose record holds it (None: shared resources such as Practitioner).
    returned: dict[str, str | None] = field(default_factory=dict)
    written: dict[str, str | None] = field(default_factory=dict)
    # "batch" or "transaction" when the interaction was a Bundle.
    bundle: str | None = None
    # An ingest dry run (fhir_server.ingest.dry_run): what it "wrote" was rolled back.
    dry_run: bool = False

    def patient(self, patient: str | None) -> None:
        if patient:
            self.patients.setdefault(patient, None)


_current: ContextVar[Trace | None] = ContextVar("audit_trace", default=None)


def begin() -> Trace:
    trace = Trace()
    _current.set(trace)
    return trace


def named(patients: list[str] | None) -> None:
    trace = _current.get()
    if trace is not None:
        for patient in patients or ():
            trace.patient(patient)


def returned(resource_type: str, resource_id: str, patient: str | None) -> None:
    trace = _current.get()
    if trace is not None:
        trace.returned.setdefault(f"{resource_type}/{resource_id}", patient)
        trace.patient(patient)


def written(resource_type: str, resource_id: str, patient: str | None) -> None:
    trace = _current.get()
    if trace is not None:
        trace.written.setdefault(f"{resource_type}/{resource_id}", patient)
        trace.patient(patient)


def bundle(kind: str) -> None:
    trace = _current.get()
    if trace is not None and trace.bundle is None:
        trace.bundle = kind


def dry_run() -> None:
    trace = _current.get()
    if trace is not None:
        trace.dry_run = True


def never_stored(patient: str) -> None:
    """A patient a dry run would have created: the request touched no record of theirs."""
    trace = _current.get()
    if trace is not None:
        trace.patients.pop(patient, None)
