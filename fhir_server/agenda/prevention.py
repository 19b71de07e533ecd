"""Which prevention reminders a person is due, from `policies/prevention-reminders.json` (issue 15).

Pure computation: a birth date, a sex, today and the dated codes the record holds in, the due
date of each rule that applies out. The store side (which resources, when to recompute, how the
reminders are written) is `fhir_server.agenda.reminders`.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import orjson

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "prevention-reminders.json"
SCHEDULES = ("once", "repeat", "series", "boosters")


@dataclass(frozen=True)
class Evidence:
    """Something the record shows done: a coding of one of its resources, and its date."""
    system: str
    code: str
    day: date


@dataclass(frozen=True)
class Due:
    rule: str
    title: str
    day: date


@cache
def policy() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(POLICY_FILE.read_bytes())
    for rule in data["rules"]:
        if rule["schedule"]["kind"] not in SCHEDULES or rule["source"] not in data["sources"]:
            raise ValueError(f"{POLICY_FILE}: rule {rule['id']} has an unknown schedule or source")
    return data


def rules() -> list[dict[str, Any]]:
    return list(policy()["rules"])


def plus_months(day: date, months: int) -> date:
    """`day` `months` later; the 29th-31st of a shorter month becomes its last day."""
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def birthday(born: date, age: int) -> date:
    return plus_months(born, 12 * age)


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _interval(rule: dict[str, Any], matched: dict[str, Any], count: int) -> int:
    """Months until the next one after the `count`-th evidence, `matched` being the latest's entry."""
    if "intervalMonths" in matched:
        return int(matched["intervalMonths"])
    schedule = rule["schedule"]
    steps = schedule.get("intervalsMonths") or [schedule["intervalMonths"]]
    return int(steps[min(count, len(steps)) - 1])


def _matching(rule: dict[str, Any], evidence: list[Evidence]) -> list[tuple[Evidence, dict[str, Any]]]:
    found = []
    for item in evidence:
        for entry in rule["evidence"]:
            if item.system == entry["system"] and (
                    item.code == entry["code"] or (entry.get("prefix") and item.code.startswith(entry["code"]))):
                found.append((item, entry))
                break
    return sorted(found, key=lambda pair: pair[0].day)


def _boosters(schedule: dict[str, Any], born: date, today: date, done: list[Evidence]) -> date:
    """The booster age due: the next after the last dose (a dose up to `toleranceMonths` before a
    booster age counts for it), and at least the latest booster age reached."""
    ages = list(schedule["ages"])
    while ages[-1] <= age_on(born, today) + schedule["thenEveryYears"]:
        ages.append(ages[-1] + schedule["thenEveryYears"])
    tolerance = int(schedule["toleranceMonths"])
    reached = [a for a in ages if birthday(born, a) <= today]
    chosen = reached[-1] if reached else ages[0]
    if done:
        last = done[-1].day
        after = next(a for a in ages if plus_months(birthday(born, a), -tolerance) > last)
        chosen = max(chosen, after)
    return birthday(born, chosen)


def due_for(rule: dict[str, Any], born: date, sex: str | None, today: date, evidence: list[Evidence]) -> date | None:
    """The date `rule` is next due for this person, or None when it does not apply (any more)."""
    if rule.get("sex") and rule["sex"] != sex:
        return None
    start = birthday(born, rule["fromAge"])
    end = birthday(born, rule["toAge"] + 1) if rule.get("toAge") is not None else None
    if end is not None and today >= end:
        return None
    schedule = rule["schedule"]
    matched = [(e, entry) for e, entry in _matching(rule, evidence) if end is None or e.day < end]
    kind = schedule["kind"]
    if kind == "once":
        return None if any(e.day >= start for e, _ in matched) else start
    if kind == "boosters":
        due = _boosters(schedule, born, today, [e for e, _ in matched])
    elif kind == "series":
        doses = [e for e, _ in matched if e.day >= start]
        if len(doses) >= schedule["doses"]:
            return None
        due = plus_months(doses[-1].day, schedule["intervalMonths"]) if doses else start
    else:
        if matched:
            latest, entry = matched[-1]
            count = sum(1 for e, _ in matched if e.day >= plus_months(start, -_interval(rule, entry, 1)))
            due = max(start, plus_months(latest.day, _interval(rule, entry, max(count, 1))))
        else:
            due = start
    return None if end is not None and due >= end else due


def counts_for_any(evidence: list[Evidence]) -> bool:
    """Whether any rule would read one of these codings as evidence."""
    return any(_matching(rule, evidence) for rule in rules())


def due_reminders(born: date, sex: str | None, today: date, evidence: list[Evidence]) -> list[Due]:
    found = []
    for rule in rules():
        day = due_for(rule, born, sex, today, evidence)
        if day is not None:
            found.append(Due(rule["id"], rule["title"], day))
    return found
