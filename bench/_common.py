"""What the benchmarks share: kubectl, the sandbox's API with its own watches, process figures, percentiles.

Not a benchmark itself (`make bench` runs the files that do not start with an underscore). Each
benchmark imports it as ``_common`` (Python puts the script's folder first on the path).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "KUBECTL",
    "REPO",
    "Api",
    "cpu_seconds",
    "kubectl",
    "peak_rss_mib",
    "percentile",
    "record",
    "rss_mib",
    "shut_down",
    "wait_for",
    "wait_idle",
]

REPO = Path(__file__).resolve().parents[1]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 1800) -> str:
    """Run the real kubectl; exit with its error when it fails."""
    done = subprocess.run(
        [KUBECTL, *args], env=env, capture_output=True, text=True, input=stdin, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _status_field(pid: int, name: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    """The process's resident memory now, in MiB."""
    return _status_field(pid, "VmRSS")


def peak_rss_mib(pid: int) -> float:
    """The most resident memory the process has had, in MiB."""
    return _status_field(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 600) -> float:
    """Wait until the process uses under 5 % of a core over 2 s (it has caught up with its watches)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(2.0)
        if cpu_seconds(pid) - before < 0.1:
            return time.monotonic() - started
    raise SystemExit(f"process {pid} did not settle within {timeout} s")


def percentile(values: list[float], share: float) -> float:
    """The value at ``share`` (0.5, 0.99) of the sorted values, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> float:
    """Seconds until ``check()`` holds; exit naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise SystemExit(f"{what} did not happen within {timeout} s")


class Api:
    """Just enough of the API over HTTPS with the sandbox's token: requests and line-delimited watches."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE  # loopback, the sandbox's own certificate

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=60, context=self.context) as answer:
            return json.loads(answer.read())

    def watch(
        self, path: str, seen: Callable[[dict[str, Any], float], None], stop: threading.Event, *, decode: bool = True
    ) -> None:
        """Call ``seen(event, arrival)`` for each watch event of ``path`` (from now on) until ``stop``.

        ``decode=False``: ``seen`` gets an empty event for each one, for counting without the CPU of parsing it
        (this process shares the machine with what it measures). Returns once the watch is connected.
        """
        connected = threading.Event()

        def run() -> None:
            listed = self.request("GET", path)
            version = listed["metadata"]["resourceVersion"]
            headers = {"Authorization": f"Bearer {self.token}"}
            separator = "&" if "?" in path else "?"
            url = f"{self.url}{path}{separator}watch=true&resourceVersion={version}&allowWatchBookmarks=true"
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=3600, context=self.context) as stream:
                connected.set()
                for line in stream:
                    arrival = time.monotonic()
                    if stop.is_set():
                        return
                    if line.strip():
                        seen(json.loads(line) if decode else {}, arrival)

        threading.Thread(target=run, daemon=True).start()
        if not connected.wait(60):
            raise SystemExit(f"could not watch {path}")


def shut_down(operator: subprocess.Popen[bytes] | None, home: Path) -> None:
    """Stop the operator (SIGTERM) if it runs, and the sandbox of ``home``."""
    if operator is not None and operator.poll() is None:
        operator.send_signal(signal.SIGTERM)
        operator.wait(30)
    subprocess.run(
        [sys.executable, "-m", "upkeep.cli", "sandbox", "down", "--home", str(home)],
        check=False,
        capture_output=True,
        timeout=120,
    )


def record(results: Path, figures: dict[str, Any]) -> None:
    """Add the machine and the time to the figures, append them as one JSON line to ``results``, print them."""
    figures["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    figures["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a", encoding="utf-8") as out:
        out.write(json.dumps(figures) + "\n")
    print(json.dumps(figures))
