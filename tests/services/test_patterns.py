"""pie.contracts.patterns: a user's pattern is bounded before `regex` compiles it, the scan that
bounds it reads patterns as `regex` does, and `$` means the end of the string (ECMA-262)."""

from __future__ import annotations

import contextlib
import gc
import io
import re
import tracemalloc

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from pie.contracts import patterns
from pie.contracts.patterns import PatternError, prepared, search

# Pieces of pattern syntax whose meaning depends on where they stand: escapes, sets (with "]"
# first, POSIX classes, escaped brackets), comments, group kinds, flags, counts and braces.
TOKENS = [
    "a", "b", "7", ",", "-", ":", "^", "$", "|", "?", "*", "+", ".", "=", "!", "<", ">", "#",
    "(", ")", "[", "]", "{", "}", "\\", "\\\\", "\\$", "\\[", "\\]", "\\(", "\\)", "\\{", "\\d",
    "\\p{L}", "\\p{", "\\pL", "\\N{LATIN SMALL LETTER A}", "\\x41", "\\g<1>",
    "(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?|", "(?P<n>", "(?<m>", "(?#", "(?i)", "(?s:",
    "(?m)", "(?-i:", "(?(1)", "(?1)", "(?R)", "(*FAIL)",
    "[", "[^", "[]", "[^]", "[:alpha:]", "[[:digit:]]", "[:^a:]",
    "{2}", "{3,}", "{,4}", "{2,5}", "{,}", "{}", "{e<=1}", "{ 2}",
]  # fmt: skip
SOUP = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map("".join)
ATOMS = st.sampled_from(
    ["a", "b", "7", ".", "$", "^", ",", ":", "-", "=", "!", "<", ">", "#", "{", "}", "]"]
    + ["\\d", "\\$", "\\[", "\\]", "\\(", "\\)", "\\{", "\\}", "\\\\", "\\p{L}", "\\pL", "\\x41"]
    + ["\\p{Script=Latin}", "\\N{LATIN SMALL LETTER A}", "(?#a[b)", "(?#\\)[)", "(?i)", "(?m)"]
    + ["[ab]", "[]a]", "[^]a]", "[a-c]", "[[:alpha:]]", "[[:digit:]x]", "[\\]]", "[(]", "[)]"]
    + ["[{]", "[$]", "[\\[]", "[:a]", "[[]", "[a-]", "[^[:^alpha:](]", "[\\p{L}]", "[{2}]"]
)
QUANTIFIERS = st.sampled_from(
    ["", "", "", "?", "*", "+", "??", "*?", "+?", "?+", "{2}", "{3,}", "{,3}", "{1,4}", "{,}"]
    + ["{2}?", "{2,3}+", "{e<=1}", "{}", "{ 2}"]
)
OPENERS = st.sampled_from(
    ["(", "(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?|", "(?P<n>", "(?<m>", "(?i:", "(?-i:"]
)


def _grouped(inner):
    group = st.tuples(OPENERS, inner).map(lambda p: f"{p[0]}{p[1]})")
    piece = st.tuples(ATOMS | group, QUANTIFIERS).map("".join)
    return st.lists(st.lists(piece, max_size=4).map("".join), min_size=1, max_size=3).map("|".join)


PATTERNS = st.recursive(ATOMS, _grouped, max_leaves=12) | SOUP


def dump(pattern: str) -> list[tuple[int, str]]:
    """regex's own parse of `pattern` (its DEBUG output) as (depth, line) pairs."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        regex.compile(pattern, flags=regex.V0 | regex.DEBUG, cache_pattern=False)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    return [((len(line) - len(line.lstrip())) // 2, line.strip()) for line in lines]


def expanded(tree: list[tuple[int, str]]) -> int:
    """The size of regex's parse with every counted repeat expanded (a set is one element)."""

    def size(at: int) -> tuple[int, int]:
        depth, text = tree[at]
        inner, at = 0, at + 1
        while at < len(tree) and tree[at][0] > depth:
            child, at = size(at)
            inner += child
        if text in ("BRANCH", "OR"):
            return inner, at
        if text.startswith("SET") or not inner:
            return 1, at
        counted = re.match(r"(?:GREEDY|LAZY|POSSESSIVE)_REPEAT (\d+) (\d+|INF)", text)
        times = max(int(counted[1] if counted[2] == "INF" else counted[2]), 1) if counted else 1
        return times * inner, at

    total, at = 0, 0
    while at < len(tree):
        part, at = size(at)
        total += part
    return total


@settings(max_examples=3000, deadline=None)
@given(pattern=PATTERNS)
def test_the_scan_reads_patterns_as_regex_does(pattern):
    """For every pattern regex compiles and the scan accepts: the scan's size is at least that
    of regex's own parse once repeats are expanded (so no repeat escapes the bound), and
    turning `$` into `\\Z` changed exactly regex's end-of-string anchors and nothing else."""
    try:
        original = dump(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError):
        return
    try:
        source, size = prepared(pattern)
    except PatternError:
        return
    assert size >= expanded(original), (pattern, original)
    if "(?m)" not in pattern:
        anchors = [
            (d, "END_OF_STRING MATCH" if "END_OF_STRING_LINE" in t else t) for d, t in original
        ]
        assert dump(source) == anchors, pattern


LIMITS = {
    "a" * 1001: "1,001 characters long, over 1,000",
    "a{1001}": "{1001} repeats more than 1,000 times",
    "a{0,4294967294}": "{0,4294967294} repeats more than 1,000 times",
    "a{1001,}": "{1001,} repeats more than 1,000 times",
    "(?:a{100}b){100}": "larger than 10,000 elements",
    "(?:(?:a{10}){10}){101}": "larger than 10,000 elements",
    "x{1000}" * 11: "larger than 10,000 elements",
    "(" * 33 + ")" * 33: "nests groups more than 32 deep",
    "(?x)a {2}": "inline flags x (verbose) and V0/V1 are not accepted",
    "a(?-x:b)": "inline flags x (verbose) and V0/V1 are not accepted",
    "(?V1)[[a]--b]": "inline flags x (verbose) and V0/V1 are not accepted",
    "(a": "unbalanced parenthesis",
    "a)": "unbalanced parenthesis",
    "[a": "missing ]",
    "[b-a]": "bad character range",
    "\\p{Nope}": "unknown property",
    "\\": "bad escape",
}


@pytest.mark.parametrize("pattern", LIMITS)
def test_a_pattern_beyond_a_limit_is_refused_with_the_reason(pattern):
    assert LIMITS[pattern] in (patterns.problem(pattern) or "")


WITHIN = ["a{1000}", "a{0,1000}", "(?:a{99}b){99}", "(" * 32 + ")" * 32, "x" * 1000, "a{1000,}"]


@pytest.mark.parametrize("pattern", WITHIN)
def test_a_pattern_at_a_limit_is_accepted(pattern):
    assert patterns.problem(pattern) is None


def test_compiling_within_the_limits_takes_little_memory():
    worst = ["x{1000}" * 9 + "x" * 937, "(a)" * 333, "(?i)(?:[a-z]{10}){900}", "(?:(a)|(b)){1000}"]
    gc.collect()
    tracemalloc.start()
    try:
        for pattern in worst:
            assert patterns.problem(pattern) is None
            assert tracemalloc.get_traced_memory()[1] < 8 << 20, pattern
            tracemalloc.reset_peak()
    finally:
        tracemalloc.stop()


def test_many_distinct_patterns_keep_bounded_memory():
    """Compiled patterns are kept by total size, and regex's table of every pattern it ever
    compiled (even uncached) is cleared now and then: once our cache is full, 800 more
    distinct patterns leave at most one clearing interval's entries of that table (~1 kB
    each, 255 at most) behind. Unbounded, that table grew by ~820 kB here, and an unbounded
    cache by ~13 MB."""
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(300):  # fills our cache (~110 such patterns) and passes a clearing
            assert search("x" * 900 + str(i), "y") is False
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        for i in range(300, 1100):
            assert search("x" * 900 + str(i), "y") is False
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert kept < 450 << 10, kept


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^[a-z]+$", "abc", True),
        ("^[a-z]+$", "abc\n", False),
        ("^a$|^b$", "b\n", False),
        ("x$", "x\n", False),
        ("[$]", "a$", True),
        ("\\$", "$", True),
        ("a\\\\$", "a\\", True),
        ("(?#$)a", "a", True),
        ("(?m)^b$", "a\nb\nc", True),  # multi-line mode, asked for: Python's `$`
    ],
)
def test_dollar_is_the_end_of_the_string(pattern, text, matches):
    assert search(pattern, text) is matches
