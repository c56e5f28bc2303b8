"""The verified-secret cache: skip argon2 for a secret that was verified moments ago.

Entries are keyed by ``HMAC-SHA256(k, device_id || 0x00 || secret)`` with a random
per-process key ``k``: the plaintext secret is never kept, and the key cannot be
recomputed from a memory dump of another process. The value is the stored argon2 hash
the secret matched, so an entry only ever vouches for that exact stored secret: once a
rotation drops it or a revocation clears it, the entry stops matching the record that
is read on every authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["VerifiedSecretCache"]


class VerifiedSecretCache:
    """A bounded LRU of recently verified ``(device, secret)`` pairs with a short TTL.

    Args:
        ttl: Seconds an entry is trusted (0 disables the cache).
        max_entries: Entries kept; the least recently used go first.
        clock: Monotonic seconds.
    """

    def __init__(
        self, *, ttl: float = 300.0, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError("ttl must be >= 0 and max_entries >= 1.")
        self.ttl = float(ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[str, str, float]] = OrderedDict()
        self._by_device: dict[str, set[bytes]] = {}
        self.hits = 0
        self.misses = 0

    def fingerprint(self, device_id: str, secret: str) -> bytes:
        """Return the cache key of a presented ``(device_id, secret)``."""
        message = device_id.encode("utf-8", "surrogatepass") + b"\x00" + secret.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def matches(self, fingerprint: bytes, device_id: str, secret_hash: str) -> bool:
        """Tell whether ``fingerprint`` was verified against ``secret_hash`` within the TTL."""
        entry = self._entries.get(fingerprint)
        if entry is None or entry[2] <= self._clock():
            if entry is not None:
                self._drop(fingerprint)
            self.misses += 1
            return False
        if entry[0] != device_id or not hmac.compare_digest(entry[1], secret_hash):
            self.misses += 1
            return False
        self._entries.move_to_end(fingerprint)
        self.hits += 1
        return True

    def remember(self, fingerprint: bytes, device_id: str, secret_hash: str) -> None:
        """Record that ``fingerprint`` verified against ``secret_hash``."""
        if self.ttl == 0:
            return
        self._drop(fingerprint)
        self._entries[fingerprint] = (device_id, secret_hash, self._clock() + self.ttl)
        self._by_device.setdefault(device_id, set()).add(fingerprint)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, fingerprint: bytes) -> None:
        entry = self._entries.pop(fingerprint, None)
        if entry is not None:
            owned = self._by_device.get(entry[0])
            if owned is not None:
                owned.discard(fingerprint)
                if not owned:
                    del self._by_device[entry[0]]

    def forget(self, device_id: str) -> None:
        """Drop every entry of ``device_id`` (after a rotation or revocation)."""
        for fingerprint in list(self._by_device.get(device_id, ())):
            self._drop(fingerprint)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._by_device.clear()

    def __len__(self) -> int:
        return len(self._entries)
