"""Output comparison (host side): exact rules from the contract, then properties."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxes.compare import compare_json, compare_stdout, json_equal


def test_trailing_whitespace_and_blank_lines_are_ignored() -> None:
    assert compare_stdout("1 2\n3\n", "1 2   \n3\n\n\n") is None


def test_the_number_of_lines_must_match() -> None:
    assert compare_stdout("1\n2\n", "1\n") == "expected 2 lines of output, got 1"
    assert compare_stdout("1\n", "1\n2\n") == "expected 1 lines of output, got 2"


def test_blank_lines_before_and_after_the_output_are_ignored() -> None:
    assert compare_stdout("5\n", "\n5\n") is None
    assert compare_stdout("\n\na\nb\n", "a\nb\n\n") is None
    assert compare_stdout("a\nb\n", "a\n\nb\n") is not None  # inside the output they count


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        ("7", "7.0", True),
        ("7", "7.000", True),
        ("7", "8.0", False),
        ("1000000007", "1000000008.0", False),  # within 1e-6 relative: refused, an integer is exact
        ("1000000007", "1000000007", True),
        ("50000000000000001", "5e+16", False),
        ("50000000000000001", "50000000000000000", False),
        ("123", "inf", False),
        ("123", "nan", False),
        ("123", "1e999999999", False),
        ("9" * 5000, "9" * 5000, True),
        ("9" * 5000, "9" * 4999 + "8", False),
        ("0.5", "0.5000001", True),
        ("0.5", "0.51", False),
        ("nan", "NaN", False),  # words compare exactly
    ],
)
def test_integer_answers_are_exact_and_floats_have_a_tolerance(expected: str, actual: str, equal: bool) -> None:
    assert (compare_stdout(expected, actual) is None) is equal


def test_numbers_compare_with_a_small_tolerance() -> None:
    assert compare_stdout("0.3333333\n", "0.33333333333\n") is None
    assert compare_stdout("1e9\n", "1000000000\n") is None
    assert compare_stdout("0.333\n", "0.334\n") == "line 1: expected '0.333', got '0.334'"


def test_words_compare_exactly() -> None:
    assert compare_stdout("YES\n", "yes\n") == "line 1: expected 'YES', got 'yes'"
    assert compare_stdout("a b\n", "a  b\n") is None  # tokens, not spacing, are compared


def test_first_mismatch_is_named() -> None:
    assert compare_stdout("1\n2\n3\n", "1\n5\n3\n") == "line 2: expected '2', got '5'"


def test_json_floats_within_tolerance_and_bools_apart_from_numbers() -> None:
    assert json_equal(0.1 + 0.2, 0.3)
    assert json_equal([1, 2.0], [1.0, 2])
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert not json_equal(None, 0)
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([1, 2], [1, 2, 3])


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        ("1000002", "1000003.0", False),  # an expected integer takes no tolerance
        ("1000002", "1000002.0", True),
        ("7", '{"$float": "inf"}', False),
        ("0.5", '{"$int": "' + "f" * 400 + '"}', False),  # int too large for a float: different, no OverflowError
        ('{"$float": "inf"}', '{"$int": "' + "f" * 400 + '"}', False),
        ('{"$float": "nan"}', '{"$float": "nan"}', True),
        ("0.0", "-0.0", True),
        ("[1, 2]", '{"$tuple": [1, 2]}', True),  # JSON has no tuples: a list takes one
        ('{"$tuple": [1, 2]}', "[1, 2]", False),  # a typed tuple wants a tuple
        ('{"$set": [1, 2]}', '{"$frozenset": [2, 1]}', True),
        ('{"$dict": [[[1, 2], "a"]]}', '{"$dict": [[{"$tuple": [1, 2]}, "a"]]}', False),
        ('{"$dict": [[{"$tuple": [1, 2]}, "a"]]}', '{"$dict": [[{"$tuple": [1, 2]}, "a"]]}', True),
        ('{"$fraction": [1, 2]}', "0.5", False),
        ('{"$fraction": [1, 2]}', '{"$fraction": [2, 4]}', True),
        ('{"$bytes": "YWI="}', '"ab"', False),
        ('{"$complex": [1, 2]}', '{"$complex": [1.0000000001, 2]}', True),
        ("true", "1", False),
        ('{"$set": [0, 1]}', '{"$set": [true, false]}', False),  # a bool is no number, in a set either
        ('{"$dict": [[1, "a"]]}', '{"$dict": [[true, "a"]]}', False),
        ('{"$set": [{"$tuple": [1, 2]}]}', '{"$set": [{"$tuple": [true, 2]}]}', False),
        ("1e400", "0", False),  # no float to overflow in the tolerance either
        ("1", "true", False),
        ("null", "[]", False),
        ("[1]", '{"$ref": {"id": 1, "type": "X"}}', False),
        ("[1]", "[" * 5000 + "]" * 5000, False),
        ("[1]", "not json", False),
    ],
)
def test_typed_call_values_compare_by_type_and_value(expected: str, actual: str, equal: bool) -> None:
    assert (compare_json(expected, actual) is None) is equal


odd_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**4000), max_value=2**4000)
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 2**1100, -(2**1100), 10**18 + 1]),
    lambda children: st.lists(children, max_size=3) | st.tuples(children) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)


@given(odd_values, odd_values)
def test_no_pair_of_odd_values_makes_the_comparison_raise(a: object, b: object) -> None:
    from sandboxes.runner import codec

    compare_json(codec.dumps(a), codec.dumps(b))
    compare_stdout(repr(a), repr(b))


def test_compare_json_describes_the_difference() -> None:
    assert compare_json("[1, 2]", "[1, 2]") is None
    assert compare_json("[1, 2]", "[2, 1]") == "expected [1, 2], got [2, 1]"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_equal_is_reflexive_through_serialisation(value: object) -> None:
    assert json_equal(value, json.loads(json.dumps(value)))


@given(json_values, json_values)
def test_json_equal_is_symmetric(a: object, b: object) -> None:
    assert json_equal(a, b) == json_equal(b, a)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=8))
def test_stdout_matches_itself_with_trailing_noise(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert compare_stdout(text, text) is None
    assert compare_stdout(text, text + " \n\n") is None


@given(st.lists(st.integers(), min_size=1, max_size=6), st.integers(min_value=0, max_value=5))
def test_a_changed_number_is_always_caught(numbers: list[int], index: int) -> None:
    index %= len(numbers)
    changed = list(numbers)
    changed[index] += 1
    expected = "\n".join(map(str, numbers))
    assert (
        compare_stdout(expected, "\n".join(map(str, changed)))
        == f"line {index + 1}: expected {str(numbers[index])!r}, got {str(changed[index])!r}"
    )


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_a_printed_float_matches_its_repr(x: float) -> None:
    assert compare_stdout(repr(x), f"{x:.12g}") is None or not math.isclose(x, float(f"{x:.12g}"), rel_tol=1e-6, abs_tol=1e-9)


# -- fuzzing (issue 7): the comparators see untrusted program output --------------------------

any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60) | st.sampled_from(
    ["nan", "NaN", "inf", "-inf", "1e400", "0x10", "1_000", "\x00", "\r\n", "\u2028"]
)
lines_of = st.lists(any_text | st.integers().map(str) | st.floats().map(repr), max_size=6).map("\n".join)


@given(lines_of, lines_of)
def test_stdout_matching_is_symmetric_and_never_raises(a: str, b: str) -> None:
    assert (compare_stdout(a, b) is None) == (compare_stdout(b, a) is None)


@given(st.text(max_size=5000), st.text(max_size=5000))
def test_stdout_details_stay_short(expected: str, actual: str) -> None:
    detail = compare_stdout(expected, actual)
    assert detail is None or len(detail) <= 2 * 200 + 64


@given(json_values, json_values)
def test_compare_json_agrees_with_json_equal_and_its_detail_is_short(a: object, b: object) -> None:
    detail = compare_json(json.dumps(a), json.dumps(b))
    assert (detail is None) == json_equal(a, b)
    assert detail is None or len(detail) <= 2 * 200 + 32


def test_records_compare_by_name_and_fields_whatever_a_decoder_cached_between() -> None:
    """The host decodes many programs' values in one process: records in a set or as dict keys
    must not depend on the identity of a cached class another program's value evicted."""
    from sandboxes.runner import codec

    expected = '{"$frozenset": [{"$record": {"name": "P", "kind": "dataclass", "fields": [["x", 1]]}}]}'
    decoded = codec.loads(expected)
    many = [{"$record": {"name": f"R{i}", "kind": "dataclass", "fields": [["x", i]]}} for i in range(codec.MAX_RECORD_CLASSES + 10)]
    codec.loads(json.dumps(many))  # evicts every cached record class
    assert json_equal(decoded, codec.loads(expected))
