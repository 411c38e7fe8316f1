"""Contract: idempotency keys of workflow starts are bound atomically, on both backends."""

from __future__ import annotations

import asyncio

from podium.store import IdempotencyBinding, Store


async def test_the_first_binding_wins_and_later_ones_see_it(store: Store, ns: str) -> None:
    ex = store.executions
    first = await ex.bind_idempotency_key(f"wf_{ns}", "k", "w1")
    assert first.workflow_id == "w1" and first.bound_at_ms > 0
    again = await ex.bind_idempotency_key(f"wf_{ns}", "k", "w2")
    assert again == IdempotencyBinding("w1", first.bound_at_ms)


async def test_keys_are_scoped_by_workflow_name(store: Store, ns: str) -> None:
    ex = store.executions
    assert (await ex.bind_idempotency_key(f"a_{ns}", "k", "w1")).workflow_id == "w1"
    assert (await ex.bind_idempotency_key(f"b_{ns}", "k", "w2")).workflow_id == "w2"
    # Separators in names and keys cannot make two scopes collide.
    assert (await ex.bind_idempotency_key(f"c_{ns}:x", "y", "w3")).workflow_id == "w3"
    assert (await ex.bind_idempotency_key(f"c_{ns}", "x:y", "w4")).workflow_id == "w4"


async def test_replacing_applies_only_over_the_expected_holder(store: Store, ns: str) -> None:
    ex = store.executions
    name = f"wf_{ns}"
    await ex.bind_idempotency_key(name, "k", "w1")
    stale = await ex.bind_idempotency_key(name, "k", "w3", replacing="w0")
    assert stale.workflow_id == "w1"
    replaced = await ex.bind_idempotency_key(name, "k", "w2", replacing="w1")
    assert replaced.workflow_id == "w2"
    assert (await ex.bind_idempotency_key(name, "k", "w9")).workflow_id == "w2"
    # Replacing a binding that is not there does not create one.
    missing = await ex.bind_idempotency_key(name, "none", "w5", replacing="w4")
    assert missing.workflow_id == ""


async def test_release_removes_only_the_callers_own_binding(store: Store, ns: str) -> None:
    ex = store.executions
    name = f"wf_{ns}"
    await ex.bind_idempotency_key(name, "k", "w1")
    await ex.release_idempotency_key(name, "k", "w2")  # not its holder: nothing happens
    assert (await ex.bind_idempotency_key(name, "k", "w3")).workflow_id == "w1"
    await ex.release_idempotency_key(name, "k", "w1")
    assert (await ex.bind_idempotency_key(name, "k", "w3")).workflow_id == "w3"
    await ex.release_idempotency_key(name, "never-bound", "w1")


async def test_concurrent_binders_agree_on_one_winner(
    store: Store, other_store: Store, ns: str
) -> None:
    stores = [store.executions, other_store.executions]
    for r in range(10):
        key = f"k{r}"
        results = await asyncio.gather(
            *(stores[i % 2].bind_idempotency_key(f"wf_{ns}", key, f"w{i}") for i in range(8))
        )
        holders = {b.workflow_id for b in results}
        assert len(holders) == 1, results
        [winner] = holders
        assert sum(1 for i in range(8) if f"w{i}" == winner) == 1
