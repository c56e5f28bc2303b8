"""Tests for energy_common.context: the correlation id contextvar."""

from __future__ import annotations

import asyncio

import pytest
from energy_common.context import (
    CORRELATION_ID_MAX_LENGTH,
    correlation_scope,
    get_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("abc-123", True),
        ("0af7651916cd43dd8448eb211c80319c", True),
        ("a" * CORRELATION_ID_MAX_LENGTH, True),
        ("a" * (CORRELATION_ID_MAX_LENGTH + 1), False),
        ("", False),
        ("bad value", False),
        ("evil\r\nX-Injected: 1", False),
        ("devices/+/#", False),
        (None, False),
        (42, False),
    ],
)
def test_validation(value: object, valid: bool) -> None:
    """Only bounded ids from a safe charset are adopted from outside."""
    assert is_valid_correlation_id(value) is valid


def test_set_and_reset() -> None:
    """set/reset restore the previous id."""
    token = set_correlation_id("one")
    assert get_correlation_id() == "one"
    reset_correlation_id(token)
    assert get_correlation_id() is None


def test_scope_replaces_unsafe_value() -> None:
    """correlation_scope generates a fresh id when given an unsafe one."""
    with correlation_scope("not safe!") as cid:
        assert cid != "not safe!"
        assert is_valid_correlation_id(cid)
        assert get_correlation_id() == cid
    assert get_correlation_id() is None


async def test_tasks_do_not_share_ids() -> None:
    """Concurrent tasks each see their own correlation id."""

    async def worker(cid: str) -> str | None:
        with correlation_scope(cid):
            await asyncio.sleep(0.01)
            return get_correlation_id()

    ids = [new_correlation_id() for _ in range(20)]
    assert await asyncio.gather(*(worker(cid) for cid in ids)) == ids
