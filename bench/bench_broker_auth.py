"""energy-auth benchmark: broker authentications/s of the HTTP endpoint, warm vs cold cache.

    python bench/bench_broker_auth.py            7 interleaved rounds
    python bench/bench_broker_auth.py --quick    3 short rounds

The endpoint is the EMQX authn route of ``energy_auth.broker.fastapi`` (the go-auth route
runs the same code), called in-process through ASGI with a JSON body, as EMQX sends it:
no socket, so the figures are the service's own cost. Devices are provisioned once with
the default argon2id parameters (t=3, m=64 MiB, p=4) and the hasher's default 2 threads;
each request passes the per-device rate limiter (``RateLimitCache(MemoryBackend())``).

    warm   every device authenticated within the cache TTL: one store read, one HMAC,
           no argon2 (a broker restart, a network blip: the reconnect storm case).
    cold   the cache cleared before the round: every request runs argon2 in the thread
           pool (the first connection of each device).
    argon2 ``argon2.PasswordHasher.verify`` alone, sequential, same parameters: the cost a
           backend without a verified cache pays per CONNECT (the baseline).

Requests of a round are sent concurrently (``asyncio.gather``), as a broker's connection
pool does. Reported: median authentications per wall-second and CPU milliseconds per
authentication (process CPU, hashing threads included). Every response is checked to be
an ``allow`` before it counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from typing import Any

import argon2
from energy_auth import DEFAULT_ACCESS_POLICY, PasswordHasher
from energy_auth.broker import BrokerAuthenticator
from energy_auth.broker.fastapi import broker_auth_router
from energy_auth.devices import DeviceCredentials, InMemoryDeviceCredentialStore
from energy_common.cache import MemoryBackend, RateLimitCache
from fastapi import FastAPI


async def asgi_post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST through the ASGI interface; return status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


class Bench:
    """The endpoint, its devices and their secrets."""

    def __init__(self, devices: int) -> None:
        self.hasher = PasswordHasher()  # the defaults: t=3, m=64 MiB, p=4, 2 threads
        self.credentials = DeviceCredentials(InMemoryDeviceCredentialStore(), hasher=self.hasher, cache_ttl=3600)
        limiter = RateLimitCache(MemoryBackend())
        authenticator = BrokerAuthenticator(
            DEFAULT_ACCESS_POLICY, self.credentials, rate_limiter=limiter, attempts=10_000_000
        )
        self.app = FastAPI()
        self.app.include_router(broker_auth_router(authenticator), prefix="/mqtt")
        self.devices = [f"meter-{i:05d}" for i in range(devices)]
        self.secrets: dict[str, str] = {}

    async def provision(self) -> None:
        for device_id in self.devices:
            self.secrets[device_id] = (await self.credentials.provision(device_id)).secret

    def body(self, device_id: str) -> bytes:
        return json.dumps({"username": device_id, "password": self.secrets[device_id], "clientid": device_id}).encode()

    async def storm(self, device_ids: list[str]) -> None:
        replies = await asyncio.gather(*(asgi_post(self.app, "/mqtt/emqx/authn", self.body(d)) for d in device_ids))
        for status, body in replies:
            assert status == 200, status
            assert json.loads(body)["result"] == "allow", body


async def run(rounds: int, warm_ops: int, cold_ops: int) -> dict[str, tuple[float, float]]:
    """Return the median (auth/s wall, CPU ms per auth) per variant."""
    # The cold round authenticates every device once, which also re-warms the cache for the
    # warm round that may follow it; warm rounds cycle over the same devices.
    bench = Bench(cold_ops)
    await bench.provision()
    await bench.storm(bench.devices)  # warm the cache once, and check every device is allowed
    stored = (await bench.credentials.store.get(bench.devices[0])).secrets[0].secret_hash  # type: ignore[union-attr]
    raw = argon2.PasswordHasher()
    assert raw.verify(stored, bench.secrets[bench.devices[0]])
    rng = random.Random(7)
    samples: dict[str, list[tuple[float, float]]] = {"warm": [], "cold": [], "argon2": []}
    for _ in range(rounds):
        order = list(samples)
        rng.shuffle(order)
        for variant in order:
            if variant == "cold":
                bench.credentials.cache.clear()
            ids = [bench.devices[i % len(bench.devices)] for i in range(warm_ops if variant == "warm" else cold_ops)]
            wall, cpu = time.perf_counter(), time.process_time()
            if variant == "argon2":
                for _ in ids:
                    raw.verify(stored, bench.secrets[bench.devices[0]])
            else:
                await bench.storm(ids)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            samples[variant].append((len(ids) / wall, cpu * 1000 / len(ids)))
    bench.hasher.close()
    return {
        v: (statistics.median(s[0] for s in values), statistics.median(s[1] for s in values))
        for v, values in samples.items()
    }


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 short rounds")
    args = parser.parse_args(argv)
    rounds, warm_ops, cold_ops = (3, 500, 6) if args.quick else (7, 2000, 16)
    results = asyncio.run(run(rounds, warm_ops, cold_ops))
    print(f"broker authn endpoint, {rounds} interleaved rounds (warm {warm_ops}, cold {cold_ops} per round), medians")
    print(f"{'variant':<8} {'auth/s (wall)':>14} {'CPU ms/auth':>12}")
    for variant, (rate, cpu_ms) in results.items():
        print(f"{variant:<8} {rate:>14,.1f} {cpu_ms:>12.2f}")
    warm, cold = results["warm"][0], results["cold"][0]
    print(f"warm / cold: {warm / cold:,.0f}x auth/s; cold / argon2 alone: {cold / results['argon2'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
