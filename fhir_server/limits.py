"""Rate limits (issue 26): how many requests a caller, or a network address, may make in a window,
counted once for every process of the server.

A budget is `N/S`: N requests per window of S seconds. Windows are aligned on the clock
(multiples of S since the epoch), so every process agrees on them without talking, and a refusal
says exactly when the window ends (`Retry-After`). A fixed window lets up to 2N through across a
window boundary; that is the price of a counter that is one increment.

The counters are a table in a file of the data dir, mapped into memory by every process that
serves it (`serve --workers N` forks processes that all open it), each increment made under an
exclusive lock of the file (fcntl): a few microseconds, no store work on the hot path, and one
budget for all the workers however requests are spread among them. The table has a fixed number
of slots; a key takes a slot by its hash and gives it up when its window is over. Several servers
on different machines (with MongoDB) each count their own requests: a budget is per host
(docs/DECISIONS.md).

The rules (`RULES`) are named here once; the HTTP edge (fhir_server.api.rate_limits) applies the
API rules, the token endpoint its own, and any later endpoint (sign-in, consent) takes a budget of
its own the same way: `Limiter.take(rule, key)`.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv6Address, ip_address
from pathlib import Path

from fhir_server.config import Settings, SettingInvalid, variable

log = logging.getLogger("fhir_server")
COUNTERS_FILE = "rate-limits.bin"
# 6 MB (a sparse file until used): room for ~100,000 keys at once before probes run long.
SLOTS = 1 << 18
# key hash, end of the window (epoch seconds), count
SLOT = struct.Struct("<QQQ")
# Slots looked at from the one a key's hash names before the least used one is taken over.
PROBES = 32
# The warning that keys are being dropped is said at most this often.
CROWDED_WARNING_SECONDS = 60.0

# rule -> the setting holding its budget (fhir_server.config, with the defaults: FHIR_RATE_*).
RULES = {
    "api-client": "rate_api_client",
    "api-address": "rate_api_address",
    "token": "rate_token",
    "token-failures": "rate_token_failures",
    # Failed trial sign-ins (issue 19), per address and per INS: a one-time code is not guessed.
    "signin-failures": "rate_signin_failures",
}


@dataclass(frozen=True)
class Budget:
    requests: int
    seconds: int

    @classmethod
    def parse(cls, variable: str, value: str) -> Budget | None:
        """`N/S`, or `off` (None: no limit)."""
        if value.strip().lower() == "off":
            return None
        count, _, seconds = value.partition("/")
        try:
            budget = cls(int(count), int(seconds))
        except ValueError:
            raise SettingInvalid(f"{variable}: {value!r} is not N/S (N requests per S seconds) or off") from None
        if budget.requests < 1 or budget.seconds < 1:
            raise SettingInvalid(f"{variable}: {value!r} needs at least 1 request per at least 1 second")
        return budget


def budgets(settings: Settings) -> dict[str, Budget | None]:
    return {rule: Budget.parse(variable(name), getattr(settings, name)) for rule, name in RULES.items()}


# Clients' addresses whose keys are remembered: parsing one took 4 us, on every request (issue 18).
ADDRESSES_KEPT = 4096


@lru_cache(maxsize=ADDRESSES_KEPT)
def address_key(address: str | None) -> str:
    """An IPv4 address, or the /64 of an IPv6 one (what one subscriber is usually given)."""
    try:
        parsed = ip_address((address or "").partition("%")[0])
    except ValueError:
        return address or "unknown"
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is None:
        return f"{IPv6Address(int(parsed) >> 64 << 64)}/64"
    return str(parsed.ipv4_mapped if isinstance(parsed, IPv6Address) else parsed)


class Exceeded(Exception):
    """Over budget: answered 429 with Retry-After."""

    def __init__(self, rule: str, retry_after: int) -> None:
        super().__init__(f"{rule}: budget spent, retry in {retry_after} s")
        self.rule = rule
        self.retry_after = retry_after


class Counters:
    """Counts by key for the current window of each, shared by every process mapping the file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        size = SLOTS * SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._warned = 0.0

    def add(self, key: str, window_end: int, amount: int, now: float) -> int:
        """The count of `key` in the window ending at `window_end`, after adding `amount` (0 reads)."""
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1
        first = digest % SLOTS
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            spare: tuple[int, int] | None = None  # (count, offset) of the slot to take if the key has none
            for probe in range(PROBES):
                offset = ((first + probe) % SLOTS) * SLOT.size
                held_by, ends, count = SLOT.unpack_from(self._map, offset)
                if held_by == digest:
                    count = (count if ends == window_end else 0) + amount
                    if amount:
                        SLOT.pack_into(self._map, offset, digest, window_end, count)
                    return count
                free = 0 if held_by == 0 or ends <= now else count
                if spare is None or free < spare[0]:
                    spare = (free, offset)
                if held_by == 0:
                    # Never used: a key is put in the first free slot of its run, so none lies beyond.
                    break
            if amount and spare is not None:
                if spare[0] and now - self._warned > CROWDED_WARNING_SECONDS:
                    self._warned = now
                    log.warning("rate-limit table crowded (more keys than %d slots hold): the smallest "
                                "counts are dropped to make room", SLOTS)
                SLOT.pack_into(self._map, spare[1], digest, window_end, amount)
            return amount
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


# `take` counts requests in the shared table a few at a time and spends them in this process
# (issue 18: two locked increments per request were 6 % of a read's CPU). A reservation is at most
# MOST_RESERVED requests, and at most 1/RESERVE_SHARE of what the budget had left when last seen,
# so far from the limit increments are rare, and near it every request is counted on its own:
# a refusal comes at the same request as without reservations, give or take what the other
# processes reserved and have not used yet (at most 1/RESERVE_SHARE of what was left each).
# What is reserved and not used by the window's end is lost: counted, never served.
MOST_RESERVED = 16
RESERVE_SHARE = 64
# Reservations kept per process; past this many keys they are dropped (counted, not served).
RESERVATIONS_KEPT = 4096


def _window(budget: Budget) -> tuple[float, int]:
    """Now, and the end of the budget's window holding it (windows aligned on the clock)."""
    now = time.time()
    return now, (int(now) // budget.seconds + 1) * budget.seconds


class Limiter:
    def __init__(self, counters: Counters, budgets: dict[str, Budget | None]) -> None:
        self.counters = counters
        self.budgets = budgets
        # (rule, key) -> (window end, requests counted and not yet served, count when last seen)
        self._reserved: dict[tuple[str, str], tuple[int, int, int]] = {}

    @classmethod
    def open(cls, settings: Settings, budgets: dict[str, Budget | None]) -> Limiter:
        return cls(Counters(settings.data_dir / COUNTERS_FILE), budgets)

    def _spent(self, rule: str, key: str, amount: int) -> Exceeded | None:
        """Adds `amount` to the count; the refusal due once the count (with the request asking,
        when only reading) is over the budget, else None."""
        budget = self.budgets.get(rule)
        if budget is None:
            return None
        now, window_end = _window(budget)
        count = self.counters.add(f"{rule} {key}", window_end, amount, now)
        if count + (0 if amount else 1) > budget.requests:
            return Exceeded(rule, max(1, math.ceil(window_end - now)))
        return None

    def take(self, rule: str, key: str) -> None:
        """Count one request of `key` under `rule`; Exceeded once the budget is spent."""
        budget = self.budgets.get(rule)
        if budget is None:
            return
        now, window_end = _window(budget)
        held = self._reserved.get((rule, key))
        if held is not None and held[0] == window_end and held[1] > 0:
            self._reserved[(rule, key)] = (window_end, held[1] - 1, held[2])
            return
        seen = held[2] if held is not None and held[0] == window_end else budget.requests
        amount = max(1, min(MOST_RESERVED, (budget.requests - seen) // RESERVE_SHARE))
        count = self.counters.add(f"{rule} {key}", window_end, amount, now)
        # This request is the first of the `amount` just counted.
        first = count - amount + 1
        if first > budget.requests:
            raise Exceeded(rule, max(1, math.ceil(window_end - now)))
        if len(self._reserved) >= RESERVATIONS_KEPT:
            self._reserved.clear()
        self._reserved[(rule, key)] = (window_end, min(amount - 1, budget.requests - first), count)

    def check(self, rule: str, key: str) -> None:
        """Exceeded if the budget is already spent, counting nothing (failures are counted after)."""
        refusal = self._spent(rule, key, 0)
        if refusal is not None:
            raise refusal

    def count(self, rule: str, key: str) -> None:
        """Count one (a failure) without deciding anything: the next `check` does."""
        self._spent(rule, key, 1)

    def close(self) -> None:
        self.counters.close()
