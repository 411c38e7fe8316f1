"""The Cassandra writer's record of the uniqueness keys it left (no server needed)."""

from __future__ import annotations

from podium.store.cassandra_backend.writes import KeptKeys


def test_keys_are_given_only_for_the_version_they_were_kept_for() -> None:
    kept = KeptKeys(max_keys=10)
    kept.put("w1", 3, {"a": "t1"})
    assert kept.get("w1", 3) == {"a": "t1"}
    assert kept.get("w1", 2) is None and kept.get("w1", 4) is None
    given = kept.get("w1", 3)
    assert given is not None
    given["b"] = "t2"  # a copy: a commit that fails leaves the kept keys as they were
    assert kept.get("w1", 3) == {"a": "t1"}
    kept.drop("w1")
    assert kept.get("w1", 3) is None


def test_the_least_recently_used_go_first_once_the_keys_are_too_many() -> None:
    kept = KeptKeys(max_keys=4)
    kept.put("w1", 1, {"a": "t1", "b": "t2"})
    kept.put("w2", 1, {"a": "t3"})
    assert kept.get("w1", 1) is not None  # w1 used after w2
    kept.put("w3", 1, {"a": "t4", "b": "t5"})  # 5 keys: w2 goes
    assert kept.get("w2", 1) is None
    assert kept.get("w1", 1) is not None and kept.get("w3", 1) is not None
    kept.put("w1", 2, {"a": "t1"})  # replaced, not added: 3 keys
    kept.put("w4", 1, {"a": "t6"})
    assert [kept.get(w, v) is not None for w, v in (("w1", 2), ("w3", 1), ("w4", 1))] == [
        True,
        True,
        True,
    ]
    kept.put("w5", 1, {str(i): "t" for i in range(5)})  # larger than the bound: not kept
    assert kept.get("w5", 1) is None and kept.get("w4", 1) is not None
