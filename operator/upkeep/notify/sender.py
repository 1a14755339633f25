"""Posting a notification: HTTP POST with a timeout, retries with back-off, the channel's rate limit.

``Sender.send`` posts one payload to one channel's URL and says how it went (``Delivery``);
it never raises for what the receiver or the network does. What it does:

- takes a token of the channel's bucket (``ratelimit``); none left: dropped, not sent;
- POSTs the JSON with ``Idempotency-Key: <incident uid>/<event key>``, so a receiver can
  drop the second copy of a notification resent after an operator died mid-delivery;
- 2xx: delivered. 408, 425, 429 and 5xx (but 501, 505), a timeout or a connection error: tried
  again after the back-off (``backoff``), at least as long as a ``Retry-After`` asks, up to the
  channel's ``retries.max``; any other answer (a 4xx: the URL or payload is wrong) is final.
- A wait that would end after ``deadline`` is not waited: the delivery gives up, so a delivery
  never outlives the budget that tells other operators it is still in flight.

The URL is a secret (a Slack webhook URL is its own credential): no message here contains
it, nor any error text that could (aiohttp's include the URL), only the status code or the
kind of failure.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from upkeep import __version__
from upkeep.notify import backoff, ratelimit

__all__ = ["DEFAULT_TIMEOUT", "USER_AGENT", "Delivery", "Sender"]

DEFAULT_TIMEOUT = 10.0
"""Seconds one attempt may take, connect to last byte: a webhook receiver answers in well under a second
when it is healthy, and an attempt stuck longer is better retried than waited on."""
USER_AGENT = f"upkeep/{__version__}"


@dataclass(frozen=True)
class Delivery:
    """How sending one notification went."""

    delivered: bool
    attempts: int
    """HTTP attempts made (0 when dropped by the rate limit)."""
    message: str
    """What happened, for the status and the Event; never the URL."""
    status: int | None = None
    """The last HTTP status answered, None when no answer came."""
    dropped: bool = False
    """Dropped by the rate limit, not attempted."""


def _failure_text(error: BaseException, timeout: float) -> str:
    """What went wrong, without aiohttp's text (which may carry the URL)."""
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(error, aiohttp.InvalidURL):
        return "the URL is not valid"
    if isinstance(error, aiohttp.ClientConnectorError):
        # os.strerror of the errno only: the error's own text names the address.
        code = error.os_error.errno if error.os_error is not None else None
        return f"cannot connect ({os.strerror(code) if code else 'connection failed'})"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return f"request failed ({type(error).__name__})"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Sender:
    """Sends notifications over one aiohttp session, keeping each channel's rate limit."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        buckets: ratelimit.Buckets | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.buckets = buckets or ratelimit.Buckets()
        self._sleep = sleep
        self._clock = clock
        self._draw = draw

    def budget(self, first: float, retries: int) -> float:
        """Seconds a delivery with this back-off may take at most (see ``backoff.delivery_budget``)."""
        return backoff.delivery_budget(first, retries, self.timeout)

    async def send(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str,
        channel: str,
        per_minute: int,
        retries: int,
        first_backoff: float,
        deadline: float | None = None,
    ) -> Delivery:
        """Post ``payload`` to ``url`` for ``channel``; ``deadline`` (the ``clock``'s time) bounds every wait."""
        if not self.buckets.take(channel, per_minute):
            return Delivery(
                False, 0, f"dropped: channel {channel} allows {per_minute} notifications a minute", dropped=True
            )
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key, "User-Agent": USER_AGENT}
        waits = backoff.schedule(first_backoff, retries)
        attempts = 0
        status: int | None = None
        while True:
            attempts += 1
            asked: float | None = None
            try:
                async with self.session.post(
                    url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
                ) as response:
                    status = response.status
                    await response.read()
                    if 200 <= status < 300:
                        return Delivery(True, attempts, f"HTTP {status}", status)
                    what = f"HTTP {status}"
                    if not backoff.retryable(status):
                        return Delivery(False, attempts, f"{what}, not retried: the receiver refused it", status)
                    if status in (429, 503):
                        asked = backoff.retry_after(response.headers.get("Retry-After"), _utcnow())
            except (aiohttp.ClientError, TimeoutError) as error:
                status = None
                what = _failure_text(error, self.timeout)
            if attempts > len(waits):
                tries = "attempt" if attempts == 1 else "attempts"
                return Delivery(False, attempts, f"{what}; gave up after {attempts} {tries}", status)
            wait = backoff.jittered(waits[attempts - 1], self._draw())
            if asked is not None:
                wait = max(wait, asked)
            if deadline is not None and self._clock() + wait + self.timeout > deadline:
                return Delivery(
                    False, attempts, f"{what}; gave up: the next attempt would end past the delivery deadline", status
                )
            await self._sleep(wait)
