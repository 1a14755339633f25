"""The sender against a real aiohttp server on 127.0.0.1: retries, Retry-After, final refusals, timeouts, rate limit.

No Kubernetes is involved; the waits between attempts are recorded instead of slept, so the
schedule is asserted exactly and the tests take no back-off time.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from upkeep.notify import sender

SECRET_PATH = "/services/T000/B000/secret-token"
PAYLOAD = {"kind": "IncidentNotification", "event": {"key": "opened"}}


@dataclass
class Receiver:
    """A webhook receiver that answers from a script: one (status, headers, delay) per request, the last repeats."""

    script: list[tuple[int, dict[str, str], float]]
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "path": request.path,
                "key": request.headers.get("Idempotency-Key"),
                "type": request.headers.get("Content-Type"),
                "agent": request.headers.get("User-Agent"),
                "body": json.loads(await request.read()),
            }
        )
        status, headers, delay = self.script[min(len(self.requests), len(self.script)) - 1]
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "no")


async def serving(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post(SECRET_PATH, receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}{SECRET_PATH}"
    finally:
        await runner.cleanup()


Scenario = Callable[[sender.Sender, str, list[float]], Awaitable[sender.Delivery]]


def run(
    script: list[tuple[int, dict[str, str], float]],
    scenario: Callable[[sender.Sender, str, list[float]], Awaitable[Any]],
    *,
    timeout: float = 5.0,
) -> tuple[Any, Receiver]:
    """Serve the script, build a Sender whose waits are recorded, run the scenario."""
    receiver = Receiver(script)

    async def main() -> Any:
        waits: list[float] = []

        async def record(seconds: float) -> None:
            waits.append(seconds)

        async for url in serving(receiver):
            async with aiohttp.ClientSession() as session:
                transport = sender.Sender(session, timeout=timeout, sleep=record, draw=lambda: 1.0)
                return await scenario(transport, url, waits)
        raise AssertionError("the receiver did not start")

    return asyncio.run(main()), receiver


def send(transport: sender.Sender, url: str, **options: Any) -> Awaitable[sender.Delivery]:
    settings: dict[str, Any] = {"channel": "oncall", "per_minute": 30, "retries": 5, "first_backoff": 1.0}
    settings.update(options)
    return transport.send(url, PAYLOAD, idempotency_key="uid-1/opened", **settings)


def test_a_failing_receiver_is_retried_with_back_off_until_it_accepts() -> None:
    async def scenario(transport: sender.Sender, url: str, waits: list[float]) -> Any:
        return await send(transport, url), list(waits)

    (delivery, waits), receiver = run([(503, {}, 0), (502, {}, 0), (200, {}, 0)], scenario)
    assert delivery == sender.Delivery(True, 3, "HTTP 200", 200)
    assert waits == [1.0, 2.0]
    assert len(receiver.requests) == 3
    assert {request["key"] for request in receiver.requests} == {"uid-1/opened"}
    assert all(request["body"] == PAYLOAD for request in receiver.requests)
    assert receiver.requests[0]["type"] == "application/json"
    assert receiver.requests[0]["agent"].startswith("upkeep/")


def test_retry_after_is_honoured_on_429() -> None:
    async def scenario(transport: sender.Sender, url: str, waits: list[float]) -> Any:
        return await send(transport, url), list(waits)

    (delivery, waits), _ = run([(429, {"Retry-After": "7"}, 0), (200, {}, 0)], scenario)
    assert delivery.delivered
    assert waits == [7.0]


def test_retries_are_exhausted_and_the_failure_says_so_without_the_url() -> None:
    async def scenario(transport: sender.Sender, url: str, waits: list[float]) -> Any:
        return await send(transport, url, retries=2, first_backoff=0.5), list(waits)

    (delivery, waits), receiver = run([(500, {}, 0)], scenario)
    assert not delivery.delivered
    assert (delivery.attempts, delivery.status) == (3, 500)
    assert delivery.message == "HTTP 500; gave up after 3 attempts"
    assert waits == [0.5, 1.0]
    assert len(receiver.requests) == 3


def test_a_4xx_is_final_and_not_retried() -> None:
    async def scenario(transport: sender.Sender, url: str, waits: list[float]) -> Any:
        return await send(transport, url), list(waits)

    (delivery, waits), receiver = run([(404, {}, 0), (200, {}, 0)], scenario)
    assert not delivery.delivered
    assert (delivery.attempts, delivery.status) == (1, 404)
    assert "not retried" in delivery.message
    assert waits == []
    assert len(receiver.requests) == 1


def test_a_receiver_too_slow_to_answer_times_out_and_is_retried() -> None:
    async def scenario(transport: sender.Sender, url: str, waits: list[float]) -> Any:
        return await send(transport, url, retries=1), list(waits)

    (delivery, waits), receiver = run([(200, {}, 1.0), (200, {}, 0)], scenario, timeout=0.2)
    assert delivery.delivered and delivery.attempts == 2
    assert waits == [1.0]
    assert len(receiver.requests) == 2


def test_a_receiver_that_is_not_there_fails_without_naming_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{SECRET_PATH}"

    async def scenario(transport: sender.Sender, url_: str, waits: list[float]) -> Any:
        return await send(transport, url, retries=1), list(waits)

    (delivery, waits), _ = run([(200, {}, 0)], scenario)
    assert waits == [1.0]
    assert not delivery.delivered and delivery.attempts == 2 and delivery.status is None
    assert delivery.message == "cannot connect (Connection refused); gave up after 2 attempts"
    assert "secret-token" not in delivery.message and str(port) not in delivery.message


def test_the_rate_limit_drops_what_exceeds_the_channel_s_minute() -> None:
    async def scenario(transport: sender.Sender, url: str, waits: list[float]) -> Any:
        first = [await send(transport, url, per_minute=2) for _ in range(3)]
        other = await send(transport, url, per_minute=2, channel="chat")
        return first, other

    (deliveries, other), receiver = run([(200, {}, 0)], scenario)
    assert [delivery.delivered for delivery in deliveries] == [True, True, False]
    assert deliveries[2].dropped and deliveries[2].attempts == 0
    assert deliveries[2].message == "dropped: channel oncall allows 2 notifications a minute"
    assert other.delivered, "another channel has a bucket of its own"
    assert len(receiver.requests) == 3


def test_no_wait_runs_past_the_delivery_deadline() -> None:
    async def scenario(transport: sender.Sender, url: str, waits: list[float]) -> Any:
        deadline = asyncio.get_running_loop().time() + 60.0
        transport._clock = asyncio.get_running_loop().time
        return await send(transport, url, retries=3, deadline=deadline), list(waits)

    (delivery, waits), receiver = run([(503, {"Retry-After": "120"}, 0)], scenario)
    assert not delivery.delivered and delivery.attempts == 1
    assert "past the delivery deadline" in delivery.message
    assert waits == []
    assert len(receiver.requests) == 1
