"""Measure what one argon2id hash and one verification of a partner secret cost here.

Compares our default (OWASP's minimum argon2id profile: m=19456 KiB, t=2, p=1, the defaults
of ARGON2_* in klikit_admin/settings.py) with argon2-cffi's default, RFC 9106's low-memory
profile (m=64 MiB, t=3, p=4). Prints the median, min and max wall time over --runs runs, after
one untimed warm-up. Needs only argon2-cffi:

    .venv/bin/python bench/argon2_cost.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import time
from collections.abc import Callable

from argon2 import PasswordHasher, Type, profiles

# Same construction as credentials/crypto.py::_hasher with the production defaults.
OWASP = PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
RFC_9106_LOW_MEMORY = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


def timings(operation: Callable[[], object], runs: int) -> list[float]:
    operation()  # warm-up: allocator, first-touch of the memory
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - start)
    return samples


def describe(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"median {statistics.median(ms):7.1f} ms   min {min(ms):7.1f}   max {max(ms):7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per figure (default 15)")
    runs = parser.parse_args().runs

    secret = "sk_" + secrets.token_urlsafe(36)  # same length class as ours; content is irrelevant
    print(f"argon2id cost on {platform.machine()} with {os.cpu_count()} CPUs, {runs} runs each")
    for name, hasher in [
        ("OWASP minimum (our default)", OWASP),
        ("argon2-cffi default, RFC 9106 low-memory", RFC_9106_LOW_MEMORY),
    ]:
        encoded = hasher.hash(secret)
        params = f"m={hasher.memory_cost} KiB, t={hasher.time_cost}, p={hasher.parallelism}"
        print(f"\n{name}: {params}")
        print(f"  hash    {describe(timings(lambda h=hasher: h.hash(secret), runs))}")
        print(
            f"  verify  {describe(timings(lambda h=hasher, e=encoded: h.verify(e, secret), runs))}"
        )


if __name__ == "__main__":
    main()
