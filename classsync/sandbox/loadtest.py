"""Measure a running sandbox's throughput: `python -m classsync.sandbox.loadtest --url URL`.

Start the sandbox with `--unlimited` first, or the per-realm limits (500/min) answer 429 and the
number measured is how fast the sandbox says no.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp

from classsync.sandbox.client import SandboxAdmin


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    deadline: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            await response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
        latencies.append(time.perf_counter() - began)


async def run(base_url: str, *, concurrency: int, seconds: float, realms: int) -> dict[str, Any]:
    """Hammer GET /class/{id} on ``realms`` realms with ``concurrency`` callers for ``seconds``."""
    admin = SandboxAdmin(base_url)
    targets = []
    async with aiohttp.ClientSession() as setup:
        for _ in range(realms):
            realm = admin.create_realm()
            headers = {
                "Authorization": f"Bearer {realm['access_token']}",
                "Accept": "application/json",
            }
            create_url = f"{base_url}/v3/company/{realm['realm_id']}/class?minorversion=75"
            async with setup.post(create_url, json={"Name": "Bench"}, headers=headers) as made:
                class_id = (await made.json())["Class"]["Id"]
            read_url = f"{base_url}/v3/company/{realm['realm_id']}/class/{class_id}?minorversion=75"
            targets.append((read_url, headers))
    admin.close()

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(
            *(
                _worker(session, *targets[i % len(targets)], deadline, latencies, statuses)
                for i in range(concurrency)
            )
        )
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed),
        "statuses": statuses,
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints one result line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="sandbox base URL")
    parser.add_argument("--concurrency", type=int, default=32, help="callers at once")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run")
    parser.add_argument("--realms", type=int, default=4, help="realms to spread calls over")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(args.url, concurrency=args.concurrency, seconds=args.seconds, realms=args.realms)
    )
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
