"""HTTP client benchmark: ServiceClient vs a bare httpx.AsyncClient against one local uvicorn server.

    python bench/bench_http.py            30 interleaved rounds
    python bench/bench_http.py --quick    6 short rounds

A uvicorn server runs in a subprocess on a free loopback port (so it does not share the
client's GIL) and serves one tiny raw-ASGI endpoint answering the platform envelope.
Each round runs both variants in shuffled order, in three modes: ``seq`` (one call
after the other over TCP), ``c8`` (8 tasks sharing the client over TCP) and ``asgi``
(the same app called in-process through ``httpx.ASGITransport``: no network, so the
client's own CPU cost shows most clearly). For each variant the report gives the
median calls per wall-second, the median client CPU time per call (``time.process_time``,
less sensitive to other load on the machine) and the ratio to bare httpx.

Variants:
    httpx   ``await client.get("/item")`` + ``raise_for_status()`` + ``.json()``.
    energy  ``await ServiceClient.get("/item")``: deadline, retry policy, breaker,
            context propagation, redirect handling, size limit and envelope unwrapping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from energy_common.http_client import ServiceClient

BODY = json.dumps(
    {
        "success": True,
        "data": {"id": "dev-1", "kwh": 12.5, "ts": "2026-01-01T00:00:00Z"},
        "message": None,
        "meta": None,
        "timestamp": "2026-01-01T00:00:00Z",
        "request_id": None,
    }
).encode()


async def app(
    scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    """A raw ASGI app answering every request with the same small envelope."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def serve(port: int) -> None:
    """Run the server (in the subprocess)."""
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, timeout: float = 15.0) -> None:
    """Block until the server accepts connections."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the benchmark server did not start on port {port}")


async def run_calls(call: Callable[[], Awaitable[Any]], calls: int, workers: int) -> tuple[float, float]:
    """Make ``calls`` calls with ``workers`` concurrent tasks; return (wall s, CPU s)."""

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    share = calls // workers
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(share) for _ in range(workers)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def bench(base_url: str, rounds: int, calls: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved rounds of both variants in every mode; returns samples per mode and variant."""
    results: dict[str, dict[str, list[float]]] = {}
    modes = (("seq", 1, False), ("c8", 8, False), ("asgi", 1, True))
    for mode, workers, in_process in modes:
        url = "http://bench.local" if in_process else base_url
        bare_transport = httpx.ASGITransport(app=app) if in_process else None
        energy_transport = httpx.ASGITransport(app=app) if in_process else None
        async with (
            httpx.AsyncClient(base_url=url, transport=bare_transport) as bare,
            ServiceClient(url, service_name="bench", transport=energy_transport) as energy,
        ):

            async def bare_call(client: httpx.AsyncClient = bare) -> Any:
                response = await client.get("/item")
                response.raise_for_status()
                return response.json()["data"]

            async def energy_call(client: ServiceClient = energy) -> Any:
                return await client.get("/item")

            assert await bare_call() == await energy_call()
            variants = {"httpx": bare_call, "energy": energy_call}
            for call in variants.values():  # warm-up: connections, imports, caches
                await run_calls(call, calls // 4, workers)
            for _ in range(rounds):
                order = list(variants)
                random.shuffle(order)
                for name in order:
                    wall, cpu = await run_calls(variants[name], calls, workers)
                    results.setdefault(mode, {}).setdefault(name, []).append(calls / wall)
                    results[mode].setdefault(f"{name}:cpu_us", []).append(cpu / calls * 1e6)
    return results


def report(results: dict[str, dict[str, list[float]]]) -> str:
    """Format medians and ratios.

    The ratio columns are medians of per-round ratios (each round runs both variants
    back to back, so machine load affects both alike), not ratios of medians.
    """
    header = (
        f"{'mode':<5} {'variant':<7} {'calls/s':>9} {'CPU us/call':>12} {'ratio (calls/s)':>16} {'ratio (CPU)':>12}"
    )
    lines = [header]
    for mode, samples in results.items():
        for name in ("httpx", "energy"):
            rate = statistics.median(samples[name])
            cpu = statistics.median(samples[f"{name}:cpu_us"])
            rate_ratio = statistics.median(a / b for a, b in zip(samples[name], samples["httpx"], strict=True))
            cpu_ratio = statistics.median(
                b / a for a, b in zip(samples[f"{name}:cpu_us"], samples["httpx:cpu_us"], strict=True)
            )
            lines.append(f"{mode:<5} {name:<7} {rate:>9.0f} {cpu:>12.1f} {rate_ratio:>15.2f}x {cpu_ratio:>11.2f}x")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Start the server, run the rounds, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 short rounds")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    rounds, calls = (6, 160) if args.quick else (30, 160)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        wait_for(port)
        results = asyncio.run(bench(f"http://127.0.0.1:{port}", rounds, calls))
    finally:
        server.terminate()
        server.wait(10)
    print(f"ServiceClient vs bare httpx.AsyncClient, {rounds} interleaved rounds x {calls} calls, medians")
    print("(ratios: median of per-round ratios; CPU ratio = httpx CPU / energy CPU)")
    print(report(results))
    print("ratio > 1 means energy is faster / cheaper; target: calls/s ratio >= 0.91 (within 1.1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
