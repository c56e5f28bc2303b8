"""energy-auth benchmark: TokenManager.verify_token vs raw ``jwt.decode``, and argon2id cost.

    python bench/bench_auth.py            15 interleaved rounds
    python bench/bench_auth.py --quick    5 short rounds

Tokens: for HS256 and EdDSA, one token is issued once and keys are loaded once (a PEM
parsed per call is ~100x slower). Each round runs every variant for a fixed number of
verifications, in a shuffled order, measuring CPU time (``time.process_time``) so other
load on the shared machine matters less. The report gives the median verifications per
CPU-second and the ratio energy / raw (target: >= 0.9x).

    raw     ``jwt.decode(token, key, algorithms=[alg], audience=..., issuer=...,
            options={"require": [exp, iat, nbf, jti]})`` - PyJWT with the same checks.
    energy  ``TokenManager.verify_token(token)``: strict parsing (duplicate claims,
            non-finite numbers, nesting), fixed algorithm per key, full claim checks.

Passwords: wall and CPU time of ``PasswordHasher.hash`` and ``verify`` at the default
argon2id parameters (t=3, m=64 MiB, p=4). CPU time counts all argon2 lanes, so it can
exceed wall time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization
from energy_auth import JWTKey, PasswordHasher, TokenManager

ISSUER, AUDIENCE = "auth-service", "energy-api"
RAW_OPTIONS = {"require": ["exp", "iat", "nbf", "jti"]}
CLAIMS = {"sub": "user-123", "roles": ["operator"], "permissions": ["devices:read", "readings:*"]}


def _variants() -> dict[str, dict[str, Callable[[], object]]]:
    """Build (once) the verify callables per algorithm: raw PyJWT and energy-auth."""
    result: dict[str, dict[str, Callable[[], object]]] = {}
    for algorithm in ("HS256", "EdDSA"):
        key = JWTKey.generate(algorithm)
        manager = TokenManager(key, issuer=ISSUER, audience=AUDIENCE)
        token = manager.create_access_token(CLAIMS)
        # Same key material for PyJWT, loaded once: the HMAC secret, or the parsed public key.
        raw_key: object = key._private if key.is_symmetric else serialization.load_pem_public_key(key.public_pem())

        def raw(token: str = token, raw_key: object = raw_key, algorithm: str = algorithm) -> object:
            return jwt.decode(
                token, raw_key, algorithms=[algorithm], audience=AUDIENCE, issuer=ISSUER, options=RAW_OPTIONS
            )  # type: ignore[arg-type]

        def energy(token: str = token, manager: TokenManager = manager) -> object:
            return manager.verify_token(token)

        assert raw() == energy()
        result[algorithm] = {"raw": raw, "energy": energy}
    return result


def bench_tokens(rounds: int, ops: int) -> dict[str, dict[str, float]]:
    """Return the median verifications per CPU-second per algorithm and variant."""
    variants = _variants()
    samples: dict[tuple[str, str], list[float]] = {(a, v): [] for a in variants for v in variants[a]}
    order = list(samples)
    rng = random.Random(7)
    for _ in range(rounds):
        rng.shuffle(order)
        for algorithm, variant in order:
            fn = variants[algorithm][variant]
            start = time.process_time()
            for _ in range(ops):
                fn()
            elapsed = time.process_time() - start
            samples[(algorithm, variant)].append(ops / elapsed if elapsed > 0 else float("inf"))
    return {a: {v: statistics.median(samples[(a, v)]) for v in variants[a]} for a in variants}


def bench_passwords(repeats: int) -> dict[str, tuple[float, float]]:
    """Return median (wall ms, CPU ms) of hash and verify at the default parameters."""
    hasher = PasswordHasher()
    stored = hasher.hash("correct horse battery staple")
    timings: dict[str, list[tuple[float, float]]] = {"hash": [], "verify": []}
    for _ in range(repeats):
        for name, call in (
            ("hash", lambda: hasher.hash("correct horse battery staple")),
            ("verify", lambda: hasher.verify("correct horse battery staple", stored)),
        ):
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            timings[name].append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
    return {
        name: (statistics.median(t[0] for t in values), statistics.median(t[1] for t in values))
        for name, values in timings.items()
    }


def main(argv: list[str]) -> int:
    """Run both benchmarks and print the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args(argv)
    rounds, ops, repeats = (5, 1000, 3) if args.quick else (15, 3000, 7)

    print(f"verify_token vs jwt.decode: {rounds} interleaved rounds x {ops} verifications, CPU time, medians")
    print(f"{'algorithm':<10} {'raw jwt.decode/s':>18} {'energy verify/s':>17} {'energy/raw':>11}")
    for algorithm, result in bench_tokens(rounds, ops).items():
        ratio = result["energy"] / result["raw"]
        print(f"{algorithm:<10} {result['raw']:>18,.0f} {result['energy']:>17,.0f} {ratio:>10.2f}x")

    params = PasswordHasher()
    print(
        f"\nargon2id at defaults (t={params.time_cost}, m={params.memory_cost // 1024} MiB, p={params.parallelism}), "
        f"median of {repeats}:"
    )
    for name, (wall, cpu) in bench_passwords(repeats).items():
        print(f"  {name:<7} {wall:7.1f} ms wall  {cpu:7.1f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
