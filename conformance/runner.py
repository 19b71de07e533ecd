"""Runs the selected cases one after the other against one target, then deletes what they created
(newest first, so what refers is deleted before what it refers to) unless --keep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from conformance.model import Result, Verdict
from conformance.registry import Case
from conformance.session import Failed, NotDeclared, NotRun, Session


def run_case(session: Session, case: Case) -> Result:
    session.exchanges = []
    started = time.monotonic()
    verdict, message = Verdict.PASSED, ""
    try:
        case.run(session)
    except Failed as failure:
        verdict, message = Verdict.FAILED, str(failure)
    except NotDeclared as reason:
        verdict, message = Verdict.NOT_DECLARED, str(reason)
    except NotRun as reason:
        verdict, message = Verdict.NOT_RUN, str(reason)
    except (httpx.HTTPError, OSError) as error:
        verdict, message = Verdict.ERROR, f"no answer from the server: {type(error).__name__}: {error}"
    except (KeyError, IndexError, TypeError, ValueError) as error:
        # An answer of an unexpected shape (a Bundle without entries, a body that is not JSON...).
        verdict, message = Verdict.FAILED, f"the answer did not have the expected shape ({type(error).__name__}: {error})"
    return Result(case.id, case.title, case.tags, case.requirement, verdict, message, session.exchanges,
                  round(time.monotonic() - started, 3))


def run(session: Session, cases: list[Case], progress: Callable[[Result], None] | None = None) -> list[Result]:
    results = []
    for case in cases:
        result = run_case(session, case)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def clean_up(session: Session) -> list[dict[str, Any]]:
    """Deletes what the run created, newest first; returns what became of each resource."""
    for created in reversed(session.created):
        if session.options.keep:
            created.note = "kept (--keep)"
            continue
        try:
            response = session.request("DELETE", created.reference)
        except httpx.HTTPError as error:
            created.note = f"not deleted: {error}"
            continue
        created.deleted = response.status_code in (200, 202, 204, 404, 410)
        created.note = "deleted" if created.deleted else f"the server refused the delete ({response.status_code})"
    return [{"reference": c.reference, "deleted": c.deleted, "note": c.note} for c in session.created]
