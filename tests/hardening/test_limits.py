"""The rate-limit counters and budgets as functions: what a budget reads, what an address is
counted as, windows, and two openers of one counter file sharing its counts (as workers do)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fhir_server.config import SettingInvalid
from fhir_server.limits import Budget, Counters, Exceeded, Limiter, address_key


def test_budgets_read_n_per_s_or_off() -> None:
    assert Budget.parse("X", "5/60") == Budget(5, 60)
    assert Budget.parse("X", " OFF ") is None
    for wrong in ("0/60", "5/0", "5", "lots", "5/60/2", ""):
        with pytest.raises(SettingInvalid, match="X"):
            Budget.parse("X", wrong)


@pytest.mark.parametrize("peer,key", [
    ("127.0.0.1", "127.0.0.1"), ("::ffff:10.1.2.3", "10.1.2.3"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"), (None, "unknown"),
])
def test_an_ipv6_caller_is_counted_by_its_64(peer: str | None, key: str) -> None:
    assert address_key(peer) == key


def test_a_count_lives_as_long_as_its_window(tmp_path: Path) -> None:
    counters = Counters(tmp_path / "counts")
    assert [counters.add("k", 100, 1, now) for now in (50, 60, 99)] == [1, 2, 3]
    assert counters.add("k", 100, 0, 99) == 3  # reading counts nothing
    assert counters.add("other", 100, 1, 99) == 1
    assert counters.add("k", 200, 1, 150) == 1  # the next window starts from zero


def test_two_openers_of_one_file_share_one_budget(tmp_path: Path) -> None:
    budgets: dict[str, Budget | None] = {"api-client": Budget(3, 3600), "token-failures": Budget(2, 3600)}
    one = Limiter(Counters(tmp_path / "counts"), budgets)
    other = Limiter(Counters(tmp_path / "counts"), budgets)
    one.take("api-client", "a")
    other.take("api-client", "a")
    one.take("api-client", "a")
    with pytest.raises(Exceeded) as refused:
        other.take("api-client", "a")
    assert 1 <= refused.value.retry_after <= 3600
    other.take("api-client", "b")  # another key, its own budget
    # Failures are counted after the fact; `check` refuses once they fill the budget, counting nothing.
    one.check("token-failures", "a")
    one.count("token-failures", "a")
    other.count("token-failures", "a")
    with pytest.raises(Exceeded):
        other.check("token-failures", "a")
    Limiter(Counters(tmp_path / "counts"), {"api-client": None}).take("api-client", "a")  # off: no limit


def test_a_budget_far_from_spent_is_counted_a_few_requests_at_a_time(tmp_path: Path) -> None:
    counters = Counters(tmp_path / "counts")
    limiter = Limiter(counters, {"api-client": Budget(1000, 3600)})

    def shared() -> int:
        now = time.time()
        return counters.add("api-client a", (int(now) // 3600 + 1) * 3600, 0, now)

    limiter.take("api-client", "a")
    # The first request of a window is counted alone: nothing is known of the others yet.
    assert shared() == 1
    limiter.take("api-client", "a")
    # Then 1/64 of what was left, at most 16: this request and the next 14 are counted already.
    assert shared() == 16
    for _ in range(14):
        limiter.take("api-client", "a")
    assert shared() == 16
    limiter.take("api-client", "a")
    assert shared() == 31


def test_processes_counting_ahead_serve_the_budget_and_not_one_request_more(tmp_path: Path) -> None:
    budgets: dict[str, Budget | None] = {"api-client": Budget(300, 3600)}
    workers = [Limiter(Counters(tmp_path / "counts"), budgets) for _ in range(3)]
    served, first_refusal = 0, None
    for turn in range(400):
        try:
            workers[turn % 3].take("api-client", "a")
            served += 1
        except Exceeded:
            first_refusal = served if first_refusal is None else first_refusal
    # The first refusal comes when the others still hold what they counted ahead, at most 300//64
    # each; they go on serving it, and the budget is served whole, never more.
    assert first_refusal is not None and 300 - 2 * (300 // 64) <= first_refusal <= 300
    assert served == 300


def test_a_reservation_sized_on_an_old_count_never_serves_past_the_budget(tmp_path: Path) -> None:
    budgets: dict[str, Budget | None] = {"api-client": Budget(1000, 3600)}
    slow, busy = (Limiter(Counters(tmp_path / "counts"), budgets) for _ in range(2))
    slow.take("api-client", "a")
    slow.take("api-client", "a")  # counts 15 ahead, having seen 1
    served = 2
    for _ in range(14):
        slow.take("api-client", "a")
        served += 1
    # Meanwhile another worker brings the count to 10 below the budget (it counts one at a time there).
    counters = Counters(tmp_path / "counts")
    now = time.time()
    window_end = (int(now) // 3600 + 1) * 3600
    while counters.add("api-client a", window_end, 0, now) < 990:
        busy.take("api-client", "a")
        served += 1
    # The slow one last saw 16 and counts 15 ahead again, past the budget: it may serve only what
    # was left below it, and then refuses.
    for _ in range(20):
        try:
            slow.take("api-client", "a")
            served += 1
        except Exceeded:
            pass
    assert served == 1000
