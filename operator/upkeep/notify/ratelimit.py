"""The rate limit of a channel (``rateLimit.perMinute``): a token bucket per channel, per operator process.

A bucket holds a minute's worth of tokens and refills evenly (``perMinute`` / 60 per second),
so a burst of up to ``perMinute`` goes out at once and a steady flood is held to the rate.
A notification that finds the bucket empty is dropped, as the CRD says, and recorded as
Failed, so a flapping signal cannot page someone hundreds of times. The clock is passed in:
tests drive it by hand.

Each operator process keeps its own buckets; with several replicas acting at once (each
``--standalone``) a channel could see up to the limit from each.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Buckets", "TokenBucket"]


class TokenBucket:
    """Tokens for ``per_minute`` messages a minute, a minute's worth at most."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"a rate limit is at least 1 per minute, not {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(per_minute)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._at)
        self._tokens = min(float(self.per_minute), self._tokens + elapsed * self.per_minute / 60.0)
        self._at = now

    def take(self) -> bool:
        """Spend a token if there is one: whether the message may go."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until the next token."""
        self._refill()
        missing = 1.0 - self._tokens
        return 0.0 if missing <= 0 else missing * 60.0 / self.per_minute


class Buckets:
    """One ``TokenBucket`` per channel, made on first use; a changed ``perMinute`` starts a new one."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, channel: str, per_minute: int) -> bool:
        """Spend a token of ``channel``'s bucket: whether the message may go."""
        bucket = self._buckets.get(channel)
        if bucket is None or bucket.per_minute != per_minute:
            bucket = self._buckets[channel] = TokenBucket(per_minute, clock=self._clock)
        return bucket.take()
