"""Checks that run inside the test process, exercised here without a sandbox."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from sandboxes.runner import harness


class Rigged:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class RiggedInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class Plain:
    pass


def run_test(code: str, **names: Any) -> None:
    namespace = {harness.PLAIN_NAME: harness._CHECKER, **names}
    exec(harness.compile_test(code), namespace)


@pytest.mark.parametrize("value", [Rigged(), RiggedInt(1), [1, Rigged()], {"k": Rigged()}, (Rigged(),), {RiggedInt(3)}])
def test_rigged_comparisons_are_refused(value: object) -> None:
    with pytest.raises(AssertionError, match="defines its own comparisons"):
        run_test("assert value == expected", value=value, expected=value)


@pytest.mark.parametrize(
    "value",
    [
        1,
        2.5,
        "s",
        None,
        True,
        [1, [2, (3,)]],
        {"a": {1, 2}},
        collections.Counter("ab"),
        collections.OrderedDict(a=1),
        collections.namedtuple("P", "x")(1),
        Plain(),
    ],
)
def test_plain_values_compare_normally(value: object) -> None:
    run_test("assert value == value2", value=value, value2=value)


def test_identity_comparisons_are_left_alone() -> None:
    run_test("assert obj is not None and obj is obj", obj=Rigged())


def test_failures_still_fail() -> None:
    with pytest.raises(AssertionError):
        run_test("assert f() == 3", f=lambda: 4)


def test_to_json_converts_tuples_sets_and_keys() -> None:
    assert harness.to_json((1, (2, 3))) == [1, [2, 3]]
    assert harness.to_json({3, 1, 2}) == [1, 2, 3]
    assert harness.to_json({1: "a", None: "b"}) == {"1": "a", "null": "b"}
    assert harness.to_json(RiggedInt(7)) == 7 and type(harness.to_json(RiggedInt(7))) is int


def test_to_json_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="not JSON data"):
        harness.to_json(Rigged())
