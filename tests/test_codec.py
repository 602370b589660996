"""The plain-data boundary (runner/codec.py): what crosses, exactly, and what never can."""

from __future__ import annotations

import collections
import dataclasses
import decimal
import fractions
import json
import math
import weakref
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxes.runner import codec


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    a: int
    b: list[int]


def round_trip(value: Any, decoder: codec.Decoder | None = None) -> Any:
    return codec.loads(codec.dumps(value), decoder)


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -1, 2**63, -(2**200), 2**20000, 1.5, -0.0, math.inf, -math.inf, "s", "",
        [1, [2]], (1, (2, 3)), {1, 2}, frozenset({3}), {"a": 1}, {(1, 2): "t", 3: None, "$x": 1},
        b"\x00\xff", bytearray(b"ab"), 1 + 2j, fractions.Fraction(1, 3), decimal.Decimal("1.10"),
        range(1, 10, 2), collections.Counter("aab"), collections.OrderedDict(b=1, a=2), collections.deque([1, 2]),
    ],
    ids=lambda v: type(v).__name__,
)
def test_plain_values_cross_with_their_type_and_value(value: Any) -> None:
    back = round_trip(value)
    assert type(back) is type(value) and back == value
    if isinstance(value, float) and value == 0:
        assert math.copysign(1, back) == math.copysign(1, value)


def test_nan_crosses() -> None:
    assert math.isnan(round_trip(math.nan))


def test_records_cross_as_trusted_classes() -> None:
    point = round_trip(Point(1, 2))
    assert point == (1, 2) and point.x == 1 and type(point) is not Point  # a namedtuple compares as a tuple
    assert round_trip(Point(1, 2)) == point  # one trusted class per (name, fields)
    pair = round_trip(Pair(1, [2]))
    assert pair == round_trip(Pair(1, [2])) and pair != round_trip(Pair(1, [3]))
    assert dataclasses.is_dataclass(pair) and pair.b == [2]
    # with the setup's own class of that name and fields, the record becomes that class
    assert type(round_trip(Pair(1, [2]), codec.Decoder(classes={"Pair": Pair}))) is Pair
    assert type(round_trip(Point(1, 2), codec.Decoder(classes={"Point": Point}))) is Point


class Rigged:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class RiggedInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class RiggedList(list):  # type: ignore[type-arg]
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter([42])


def test_subclasses_of_plain_types_cross_as_the_plain_value() -> None:
    back = round_trip(RiggedInt(7))
    assert type(back) is int and back == 7 and back != 8
    assert round_trip(RiggedList([1, 2])) == [1, 2]  # read through list's own iterator
    assert type(round_trip({"k": RiggedInt(1)})["k"]) is int


_KEPT = Pair(1, [])


@pytest.mark.parametrize("value", [Rigged(), weakref.proxy(_KEPT), type, print, iter([1]), Ellipsis, NotImplemented], ids=lambda v: type(v).__name__)
def test_objects_that_are_not_plain_data_do_not_cross(value: Any) -> None:
    with pytest.raises(codec.CodecError):
        codec.dumps(value)


def test_without_a_decoder_for_them_references_are_refused() -> None:
    with pytest.raises(codec.CodecError, match="cannot cross"):
        codec.loads('{"$ref": {"id": 1, "type": "X"}}')


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100000 + "]" * 100000,
        '{"$int": "xyz"}',
        '{"$int": 5}',
        '{"$set": [[1]]}',
        '{"$dict": [[[1], 2]]}',
        '{"$dict": [1]}',
        '{"$float": "1e400"}',
        '{"$fraction": [1, 0]}',
        '{"$fraction": ["1", 2]}',
        '{"$decimal": 5}',
        '{"$record": {"name": "__class__", "kind": "dataclass", "fields": []}}',
        '{"$record": {"name": "P", "kind": "dataclass", "fields": [["x", 1], ["x", 2]]}}',
        '{"$record": {"name": "P", "kind": "class", "fields": []}}',
        '{"$bytes": "!!"}',
        '{"$range": [1, 2, 0]}',
        '{"$nope": 1}',
        "1" * 5000,
        "not json",
    ],
)
def test_invalid_typed_json_raises_codec_error_only(text: str) -> None:
    with pytest.raises(codec.CodecError):
        codec.loads(text)


def test_nesting_is_bounded_both_ways() -> None:
    deep: list[Any] = []
    for _ in range(codec.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(codec.CodecError):
        codec.dumps(deep)
    with pytest.raises(codec.CodecError):
        codec.loads(json.dumps(deep))


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary() | st.fractions(),
    lambda children: st.lists(children, max_size=4)
    | st.tuples(children, children)
    | st.dictionaries(st.integers() | st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(plain)
def test_any_plain_value_round_trips_exactly(value: Any) -> None:
    assert round_trip(value) == value


@given(st.text())
def test_arbitrary_text_decodes_or_raises_codec_error(text: str) -> None:
    try:
        codec.loads(text)
    except codec.CodecError:
        pass


def test_values_built_to_flood_a_hash_table_are_refused() -> None:
    flood = {"$set": [k * (2**61 - 1) for k in range(1, 5000)]}  # every element hashes to 0
    with pytest.raises(codec.CodecError, match="share one hash"):
        codec.loads(json.dumps(flood))
    mostly = {"$set": [7 + k * (2**61 - 1) for k in range(200)] + list(range(10**6, 10**6 + 5000))}  # a quarter would pass a ratio
    with pytest.raises(codec.CodecError, match="share one hash"):
        codec.loads(json.dumps(mostly))
    ordinary = set(range(0, 65536 * 3000, 65536))  # multiples of 65536: Python's probing copes
    assert round_trip(ordinary) == ordinary


def test_the_names_only_the_program_can_define() -> None:
    tests = ["assert max_chain_length([Pair(5, 24), Pair(1, 2)], 2) == 1", "assert math.floor(abs(helper(2))) == 2"]
    assert codec.program_names(tests, "def helper(x):\n    return x\n", "max_chain_length") == ("Pair",)
    assert codec.free_names("import os\nfor i in range(3):\n    assert f(i, os.sep)\n") == ("f", "range")


def test_a_fraction_too_large_to_normalise_cheaply_is_refused() -> None:
    """Fraction() takes the gcd of its parts, quadratic in their size: two 4-Mbit parts hold a
    decoder (the judge, or the host's comparison) for seconds. Up to MAX_FRACTION_BITS each they
    cross; beyond, the value is refused (the program's fault), before any gcd is taken."""
    big = 1 << (codec.MAX_FRACTION_BITS - 1)
    assert codec.loads(codec.dumps(fractions.Fraction(big + 1, big - 1))) == fractions.Fraction(big + 1, big - 1)
    wire = json.dumps({"$fraction": [{"$int": format((1 << (1 << 22)) + 1, "x")}, {"$int": "3"}]})
    with pytest.raises(codec.CodecError, match="at most"):
        codec.loads(wire)
