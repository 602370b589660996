"""`basics`: short Python function problems the project generates itself, for the CPU demo.

HumanEval is too hard for a 135M model to learn from in a few minutes: almost every group of
completions fails, so almost no group carries a GRPO signal. These problems are of the kind a
small instruct model solves some of the time (count, filter, clamp, reverse, sum...), so that
most groups have reward variance. Each *family* is a task with a constant that changes between
instances (add {k} to every number; the last {k} items; count the character {c}...); an
instance's tests are asserts whose expected values come from the family's reference solution on
seeded random inputs, so every problem is solvable by construction (tests/test_basics.py runs each
reference through the reward server).

The families are split once, by name: `basics` (training) holds instances of the training
families, `basics-heldout` instances of families never trained on, so held-out pass@1 measures
what carries over to new tasks, not to new constants of known ones. Instances are a pure function
of the seed: the same names give the same problems on every machine.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Args = tuple[Any, ...]
Params = dict[str, Any]

WORDS = (
    "apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "green", "house", "light",
    "ocean", "bread", "chair", "dream", "eagle", "flame", "grape", "honey", "island", "jelly",
    "kite", "moon", "night", "olive", "pearl", "queen", "robot", "sugar", "table", "umbrella",
)  # fmt: skip
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59)


def _numbers(rng: random.Random, low: int = -20, high: int = 50, min_len: int = 1, max_len: int = 8) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(min_len, max_len))]


def _sentence(rng: random.Random, min_words: int = 1, max_words: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words)))


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS)


@dataclass(frozen=True)
class Family:
    name: str
    """The function's name (also the family's)."""
    signature: str
    """Its parameters, as the instruction writes them."""
    text: str
    """What it must do; `{k}`-style fields come from `params`."""
    reference: str
    """The reference solution, with the same fields."""
    inputs: Callable[[random.Random, Params], Args]
    """One test's arguments."""
    params: Callable[[random.Random], Params] = lambda rng: {}
    float_result: bool = False
    """Tests compare within 1e-6 instead of with ==."""

    def instance(self, rng: random.Random, tests: int = 5) -> tuple[str, str, list[str]]:
        """(instruction text, reference source, asserts) of one instance."""
        params = self.params(rng)
        source = self.reference.format(**params)
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<basics {self.name}>", "exec"), namespace)  # our own reference code
        function = namespace[self.name]
        asserts: list[str] = []
        seen: set[str] = set()
        answers: Counter[str] = Counter()
        for _ in range(tests * 20):
            args = self.inputs(rng, params)
            call = f"{self.name}({', '.join(repr(a) for a in args)})"
            if call in seen:
                continue
            expected = function(*args)
            if answers[repr(expected)] >= (tests + 1) // 2:
                continue  # no answer covers more than half the tests, or `return True` would score
            seen.add(call)
            answers[repr(expected)] += 1
            if self.float_result:
                asserts.append(f"assert abs({call} - {expected!r}) < 1e-6")
            else:
                asserts.append(f"assert {call} == {expected!r}")
            if len(asserts) == tests:
                break
        return self.text.format(**params), source, asserts


def _k(low: int, high: int) -> Callable[[random.Random], Params]:
    return lambda rng: {"k": rng.randint(low, high)}


def _char(rng: random.Random) -> Params:
    return {"c": rng.choice("aeinorst")}


FAMILIES: tuple[Family, ...] = (
    Family("add_to_each", "numbers", "returns a new list with {k} added to every number of the list `numbers`",
           "def add_to_each(numbers):\n    return [n + {k} for n in numbers]\n", lambda r, p: (_numbers(r),), _k(2, 15)),
    Family("multiply_each", "numbers", "returns a new list with every number of the list `numbers` multiplied by {k}",
           "def multiply_each(numbers):\n    return [n * {k} for n in numbers]\n", lambda r, p: (_numbers(r),), _k(2, 9)),
    Family("count_greater", "numbers", "returns how many numbers of the list `numbers` are greater than {k}",
           "def count_greater(numbers):\n    return sum(1 for n in numbers if n > {k})\n", lambda r, p: (_numbers(r, 0, 30),), _k(3, 25)),
    Family("sum_of_multiples", "n", "returns the sum of all multiples of {k} from 1 to `n` inclusive",
           "def sum_of_multiples(n):\n    return sum(i for i in range(1, n + 1) if i % {k} == 0)\n",
           lambda r, p: (r.randint(0, 60),), _k(2, 9)),
    Family("keep_even", "numbers", "returns the even numbers of the list `numbers`, in their order",
           "def keep_even(numbers):\n    return [n for n in numbers if n % 2 == 0]\n", lambda r, p: (_numbers(r),)),
    Family("keep_odd", "numbers", "returns the odd numbers of the list `numbers`, in their order",
           "def keep_odd(numbers):\n    return [n for n in numbers if n % 2 != 0]\n", lambda r, p: (_numbers(r),)),
    Family("repeat_word", "word", "returns the string `word` repeated {k} times, with nothing between the copies",
           "def repeat_word(word):\n    return word * {k}\n", lambda r, p: (_word(r),), _k(2, 5)),
    Family("last_items", "items", "returns the last {k} items of the list `items` (the whole list when it is shorter)",
           "def last_items(items):\n    return items[-{k}:]\n", lambda r, p: (_numbers(r, 0, 9, 0, 9),), _k(1, 5)),
    Family("first_items", "items", "returns the first {k} items of the list `items` (the whole list when it is shorter)",
           "def first_items(items):\n    return items[:{k}]\n", lambda r, p: (_numbers(r, 0, 9, 0, 9),), _k(1, 5)),
    Family("count_char", "text", "returns how many times the character {c!r} appears in the string `text`",
           "def count_char(text):\n    return text.count({c!r})\n", lambda r, p: (_sentence(r),), _char),
    Family("remove_char", "text", "returns the string `text` with every {c!r} character removed",
           "def remove_char(text):\n    return text.replace({c!r}, '')\n", lambda r, p: (_sentence(r),), _char),
    Family("digit_sum", "n", "returns the sum of the decimal digits of the non-negative integer `n`",
           "def digit_sum(n):\n    return sum(int(d) for d in str(n))\n", lambda r, p: (r.randint(0, 99999),)),
    Family("is_divisible", "n", "returns True when the integer `n` is divisible by {k}, else False",
           "def is_divisible(n):\n    return n % {k} == 0\n", lambda r, p: (r.choice([r.randint(1, 99), p["k"] * r.randint(1, 12)]),), _k(2, 11)),
    Family("clamp", "x", "returns `x` limited to the range from {low} to {high}: {low} when `x` is smaller, {high} when it is larger",
           "def clamp(x):\n    return max({low}, min({high}, x))\n", lambda r, p: (r.randint(p["low"] - 10, p["high"] + 10),),
           lambda r: {"low": (low := r.randint(-10, 10)), "high": low + r.randint(5, 20)}),
    Family("max_minus_min", "numbers", "returns the largest number of the non-empty list `numbers` minus its smallest",
           "def max_minus_min(numbers):\n    return max(numbers) - min(numbers)\n", lambda r, p: (_numbers(r),)),
    Family("reverse_words", "sentence", "returns the words of the string `sentence` (separated by single spaces) in reverse order, joined by single spaces",
           "def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split(' ')))\n", lambda r, p: (_sentence(r),)),
    Family("capitalize_words", "sentence", "returns the string `sentence` of lower-case words with the first letter of every word in upper case",
           "def capitalize_words(sentence):\n    return ' '.join(w[:1].upper() + w[1:] for w in sentence.split(' '))\n", lambda r, p: (_sentence(r),)),
    Family("count_vowels", "text", "returns how many vowels (a, e, i, o, u) the lower-case string `text` has",
           "def count_vowels(text):\n    return sum(1 for ch in text if ch in 'aeiou')\n", lambda r, p: (_sentence(r, 1, 3),)),
    Family("is_palindrome", "text", "returns True when the string `text` reads the same backwards, else False",
           "def is_palindrome(text):\n    return text == text[::-1]\n",
           lambda r, p: (r.choice([_word(r), (w := "".join(r.choice("abc") for _ in range(r.randint(1, 3)))) + w[::-1]]),)),
    Family("factorial", "n", "returns the factorial of the non-negative integer `n` (1 for 0)",
           "def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result\n", lambda r, p: (r.randint(0, 12),)),
    Family("fibonacci", "n", "returns the `n`-th Fibonacci number, where fibonacci(0) is 0 and fibonacci(1) is 1",
           "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n", lambda r, p: (r.randint(0, 25),)),
    Family("power_of", "n", "returns {k} raised to the power of the non-negative integer `n`",
           "def power_of(n):\n    return {k} ** n\n", lambda r, p: (r.randint(0, 10),), _k(2, 7)),
    Family("square_list", "numbers", "returns a new list with the square of every number of the list `numbers`",
           "def square_list(numbers):\n    return [n * n for n in numbers]\n", lambda r, p: (_numbers(r, -9, 9),)),
    Family("sum_of_squares", "numbers", "returns the sum of the squares of the numbers of the list `numbers`",
           "def sum_of_squares(numbers):\n    return sum(n * n for n in numbers)\n", lambda r, p: (_numbers(r, -9, 9, 0),)),
    Family("average", "numbers", "returns the arithmetic mean of the non-empty list of numbers `numbers`",
           "def average(numbers):\n    return sum(numbers) / len(numbers)\n", lambda r, p: (_numbers(r),), float_result=True),
    Family("count_words", "sentence", "returns how many words the string `sentence` has (words are separated by single spaces)",
           "def count_words(sentence):\n    return len(sentence.split(' '))\n", lambda r, p: (_sentence(r),)),
    Family("longest_word", "sentence", "returns the longest word of the string `sentence` (words are separated by single spaces; the first one when several are as long)",
           "def longest_word(sentence):\n    return max(sentence.split(' '), key=len)\n", lambda r, p: (_sentence(r),)),
    Family("replace_char", "text", "returns the string `text` with every {c!r} replaced by {d!r}",
           "def replace_char(text):\n    return text.replace({c!r}, {d!r})\n", lambda r, p: (_sentence(r, 1, 3),),
           lambda r: {"c": (c := r.choice("aeiou")), "d": r.choice([x for x in "xyz*-" if x != c])}),
    Family("index_of_max", "numbers", "returns the index of the largest number of the non-empty list `numbers` (the first one when it appears more than once)",
           "def index_of_max(numbers):\n    return numbers.index(max(numbers))\n", lambda r, p: (_numbers(r, 0, 9),)),
    Family("celsius_to_fahrenheit", "celsius", "converts a temperature from degrees Celsius to degrees Fahrenheit (F = C * 9 / 5 + 32)",
           "def celsius_to_fahrenheit(celsius):\n    return celsius * 9 / 5 + 32\n", lambda r, p: (r.randint(-40, 100),), float_result=True),
    Family("join_with", "words", "returns the strings of the list `words` joined into one string with {sep!r} between them",
           "def join_with(words):\n    return {sep!r}.join(words)\n", lambda r, p: ([_word(r) for _ in range(r.randint(1, 4))],),
           lambda r: {"sep": r.choice(["-", ", ", "+", "/", " and "])}),
    Family("starts_with_vowel", "word", "returns True when the lower-case string `word` starts with a vowel (a, e, i, o, u), else False",
           "def starts_with_vowel(word):\n    return word[:1] in ('a', 'e', 'i', 'o', 'u')\n",
           lambda r, p: (r.choice([_word(r), r.choice([w for w in WORDS if w[0] in "aeiou"])]),)),
    Family("unique_sorted", "numbers", "returns the distinct numbers of the list `numbers`, sorted from smallest to largest",
           "def unique_sorted(numbers):\n    return sorted(set(numbers))\n", lambda r, p: (_numbers(r, 0, 6, 0, 9),)),
    Family("multiples_of", "n", "returns the list of the first `n` positive multiples of {k}, in increasing order",
           "def multiples_of(n):\n    return [{k} * i for i in range(1, n + 1)]\n", lambda r, p: (r.randint(0, 8),), _k(2, 12)),
    Family("count_divisible", "numbers", "returns how many numbers of the list `numbers` are divisible by {k}",
           "def count_divisible(numbers):\n    return sum(1 for n in numbers if n % {k} == 0)\n", lambda r, p: (_numbers(r, 0, 40),), _k(2, 7)),
    Family("total_length", "words", "returns the total number of characters of all the strings in the list `words`",
           "def total_length(words):\n    return sum(len(w) for w in words)\n", lambda r, p: ([_word(r) for _ in range(r.randint(0, 5))],)),
    Family("gcd", "a, b", "returns the greatest common divisor of the positive integers `a` and `b`",
           "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n", lambda r, p: (r.randint(1, 12) * (g := r.randint(1, 9)), r.randint(1, 12) * g)),
    Family("is_prime", "n", "returns True when the integer `n` is a prime number, else False",
           "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\n", lambda r, p: (r.choice([r.randint(0, 60), r.choice(PRIMES)]),)),
    Family("running_sum", "numbers", "returns the running sums of the list `numbers`: item i of the result is the sum of the first i + 1 numbers",
           "def running_sum(numbers):\n    out, total = [], 0\n    for n in numbers:\n        total += n\n        out.append(total)\n    return out\n",
           lambda r, p: (_numbers(r, -5, 9, 0),)),
    Family("differences", "numbers", "returns the list of differences between consecutive numbers of the list `numbers` (each number minus the one before it)",
           "def differences(numbers):\n    return [b - a for a, b in zip(numbers, numbers[1:])]\n", lambda r, p: (_numbers(r, -5, 20),)),
    Family("min_of_three", "a, b, c", "returns the smallest of the three numbers `a`, `b` and `c`",
           "def min_of_three(a, b, c):\n    return min(a, b, c)\n", lambda r, p: (r.randint(-9, 30), r.randint(-9, 30), r.randint(-9, 30))),
    Family("count_positive", "numbers", "returns how many numbers of the list `numbers` are greater than 0",
           "def count_positive(numbers):\n    return sum(1 for n in numbers if n > 0)\n", lambda r, p: (_numbers(r, -9, 9, 0),)),
    Family("swap_case", "text", "returns the string `text` with its lower-case letters in upper case and its upper-case letters in lower case",
           "def swap_case(text):\n    return text.swapcase()\n",
           lambda r, p: ("".join(ch.upper() if r.random() < 0.4 else ch for ch in _sentence(r, 1, 3)),)),
    Family("second_largest", "numbers", "returns the second largest distinct number of the list `numbers` (it has at least two distinct numbers)",
           "def second_largest(numbers):\n    return sorted(set(numbers))[-2]\n", lambda r, p: (r.sample(range(30), r.randint(2, 6)) * r.randint(1, 2),)),
    Family("below_limit", "numbers", "returns the numbers of the list `numbers` that are smaller than {k}, in their order",
           "def below_limit(numbers):\n    return [n for n in numbers if n < {k}]\n", lambda r, p: (_numbers(r, 0, 30),), _k(5, 25)),
)  # fmt: skip

HELDOUT_FAMILIES = frozenset(
    {"keep_odd", "first_items", "remove_char", "capitalize_words", "power_of", "count_words", "gcd", "differences", "swap_case"}
)
"""Families only `basics-heldout` has: new tasks, not new constants of trained ones."""

TRAIN_INSTANCES = 6
HELDOUT_INSTANCES = 5
SEED = 20261202


def basics_records(part: str) -> list[dict[str, Any]]:
    """Problems of `basics` (part "train") or `basics-heldout` (part "heldout") as dicts: id,
    entry_point, text (the task), reference, tests (asserts)."""
    if part not in ("train", "heldout"):
        raise ValueError(f"basics part {part!r}: choose train or heldout")
    heldout = part == "heldout"
    records = []
    for family in FAMILIES:
        if (family.name in HELDOUT_FAMILIES) != heldout:
            continue
        rng = random.Random(f"{SEED}/{family.name}")
        seen: set[str] = set()
        for number in range(HELDOUT_INSTANCES if heldout else TRAIN_INSTANCES):
            text, reference, tests = family.instance(rng)
            while len(tests) < 3 or tests[0] in seen:  # a repeated example would show two instances the same test
                text, reference, tests = family.instance(rng)
            seen.add(tests[0])
            records.append(
                {
                    "id": f"basics/{family.name}/{number}",
                    "entry_point": family.name,
                    "signature": family.signature,
                    "text": text,
                    "reference": reference,
                    "tests": tests,
                }
            )
    return records


def instruction(record: dict[str, Any]) -> str:
    """Asked as MBPP's problems are (data.mbpp_problems): the task, the name, one example test."""
    return (
        f"Write a Python function `{record['entry_point']}({record['signature']})` that {record['text']}. "
        f"It must pass tests like this one:\n```python\n{record['tests'][0]}\n```\n"
        "Answer with the function in one ```python code block."
    )
