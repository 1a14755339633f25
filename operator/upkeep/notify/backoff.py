"""When to try a delivery again: exponential back-off with jitter, Retry-After, and how long a delivery may take.

Pure: the random draw and the time come in as parameters. The schedule doubles the channel's
``retries.backoff`` for each retry, capped at ``MAX_WAIT``; each wait is jittered down to
between half and all of it ("equal jitter"), so many operators failing at once do not retry in
step, while the schedule stays an upper bound. A receiver's ``Retry-After`` (on 429 and 503)
is honoured: the wait is at least what it asks.

``delivery_budget`` bounds a whole delivery (every attempt's timeout and every wait), so a
notification left ``Pending`` by an operator that died can be told from one still being
retried: past its claim plus the budget, nobody is sending it any more.
"""

from __future__ import annotations

import datetime
import email.utils

__all__ = [
    "CLAIM_MARGIN",
    "MAX_WAIT",
    "delivery_budget",
    "jittered",
    "retry_after",
    "retryable",
    "schedule",
]

MAX_WAIT = 300.0
"""Seconds one wait between attempts lasts at most: doubling from 1 s reaches it at the 9th retry, and an
on-call notification later than five minutes after a failure is worth less than giving up and saying so."""
CLAIM_MARGIN = 30.0
"""Seconds added to a delivery's budget before another process may take over its claim: room for the
final status write and for clocks that differ a little between operator replicas."""

_RETRYABLE = frozenset({408, 425, 429})
"""4xx answers that say "not now" rather than "never": timeout, too early, too many requests."""
_FINAL_5XX = frozenset({501, 505})
"""5xx answers that will not change on retry: not implemented, HTTP version not supported."""


def schedule(first: float, retries: int, *, cap: float = MAX_WAIT) -> tuple[float, ...]:
    """The waits before each retry, in seconds: ``first``, doubled each time, each at most ``cap``."""
    return tuple(min(cap, max(0.0, first) * 2.0**index) for index in range(max(0, retries)))


def jittered(wait: float, draw: float) -> float:
    """``wait`` scaled into [wait/2, wait] by ``draw`` in [0, 1): never longer than the schedule says."""
    return wait * (0.5 + 0.5 * min(max(draw, 0.0), 1.0))


def retryable(status: int) -> bool:
    """Whether an HTTP answer may go better on a retry (408, 425, 429 and 5xx but 501 and 505)."""
    return status in _RETRYABLE or (500 <= status <= 599 and status not in _FINAL_5XX)


def retry_after(value: str | None, now: datetime.datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, (moment - now).total_seconds())


def delivery_budget(first: float, retries: int, timeout: float, *, cap: float = MAX_WAIT) -> float:
    """Seconds a delivery may take at most: every attempt timing out, every wait at its longest."""
    return sum(schedule(first, retries, cap=cap)) + (max(0, retries) + 1) * timeout
