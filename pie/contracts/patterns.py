"""User regular expressions (`pattern`, `patternProperties`): bounded, then compiled and run."""

# They run on the `regex` engine, which has a timeout (Python's `re` has none) but expands
# counted repeats when it compiles: `a{3000000}` takes gigabytes and seconds before any timeout
# could apply. So a pattern's size is bounded before anything compiles it — its length, each
# counted repeat, its nesting, and its size once its repeats are expanded — by a scan that reads
# the pattern the way the `regex` module's parser does (version 0 syntax, the default).

from __future__ import annotations

import itertools
import re

import regex

from pie.contracts.budget import BudgetExceeded, remaining, tick
from pie.contracts.cache import SizedCache

MAX_LENGTH = 1000  # characters
MAX_REPEAT = 1000  # the largest count in {m}, {m,}, {m,n}
MAX_SIZE = 10_000  # elements, once counted repeats are expanded (nested ones multiply)
MAX_NESTING = 32  # groups inside groups
# One search may take at most this long; the request's budget bounds them all together.
TIMEOUT_SECONDS = 0.1
# Compiled patterns kept for reuse, by their total size: at most about 30 MB.
CACHED_SIZE = 100_000

_COUNTED = re.compile(r"\{([0-9]*)(?:(,)([0-9]*))?\}")
_FLAG = r"(?:[abefiLmprsuwx]|V[01])"
_FLAGS = re.compile(rf"\(\?({_FLAG}*)(?:-({_FLAG}+))?([:)])")
# A property or a named character, as regex reads them (anything else after \p is a literal p).
_NAMED = re.compile(
    r"\\[pP]\{\^?[A-Za-z0-9 &_.-]*"
    r"(?:[:=](?=[A-Za-z0-9 &_./-]*[A-Za-z0-9&_./-])[A-Za-z0-9 &_./-]*)?\}"
    r"|\\N\{[A-Za-z0-9 -]*\}"
)
# A POSIX class inside a set, as regex's parse_posix_class accepts it.
_POSIX = re.compile(
    r"\[:\^?[A-Za-z0-9 &_.-]*"
    r"(?:[:=](?=[A-Za-z0-9 &_./-]*[A-Za-z0-9&_./-])[A-Za-z0-9 &_./-]*)?:\]"
)


def _counted(pattern: str, at: int) -> re.Match | None:
    """The counted repeat at `at`, if one starts there ("{}" is two characters, as in regex)."""
    counted = _COUNTED.match(pattern, at)
    return counted if counted and (counted[1] or counted[2]) else None


class PatternError(ValueError):
    """A pattern PIE does not compile; the message says why."""


class _Scan:
    """Reads a pattern once: its expanded size, and where its end-of-string `$`s are."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        # Per open group: [size so far, size of its last item (what a quantifier repeats)].
        self.groups: list[list[int]] = [[0, 0]]
        self.dollars: list[int] = []
        self.multiline = False

    def run(self) -> int:
        pattern, at = self.pattern, 0
        while at < len(pattern):
            at = self.step(pattern[at], at)
        if len(self.groups) != 1:
            raise PatternError("a group is not closed (unbalanced parenthesis)")
        return max(self.groups[0][0], 1)

    def step(self, char: str, at: int) -> int:
        """Read the syntax starting at `at`; where the next one starts."""
        if char == "\\":
            self.item(1)
            named = _NAMED.match(self.pattern, at)
            # Whatever follows the escaped character is read on its own, as regex does.
            return named.end() if named else at + 2
        if char == "[":
            self.item(1)
            return self.set_end(at)
        if char == "(":
            return self.open(at)
        if char == ")":
            self.close()
        elif char == "|":
            self.groups[-1][1] = 0
        elif char == "{" and (counted := _counted(self.pattern, at)):
            self.repeat(counted)
            return counted.end()
        elif char not in "*+?":  # a quantifier that is not counted repeats at most once more
            if char == "$":
                self.dollars.append(at)
            self.item(1)
        return at + 1

    def item(self, size: int) -> None:
        group = self.groups[-1]
        group[0] += size
        group[1] = size
        if group[0] > MAX_SIZE:
            raise PatternError(
                f"it is larger than {MAX_SIZE:,} elements once its repeats are expanded"
            )

    def repeat(self, counted: re.Match) -> None:
        low, _, high = counted.groups()
        if any(int(count) > MAX_REPEAT for count in (low, high) if count):
            raise PatternError(f"{counted.group()} repeats more than {MAX_REPEAT:,} times")
        times = int(high or low or 1)  # {m,n} counts n times, {m} and {m,} m times
        group = self.groups[-1]
        last = group[1]
        group[0] -= last  # the repeated item counts `times` times instead of once
        self.item(last * max(times, 1))

    def open(self, at: int) -> int:
        pattern = self.pattern
        if pattern.startswith("(?#", at):  # a comment: up to the first unescaped ")"
            at += 3
            while at < len(pattern) and pattern[at] != ")":
                at += 2 if pattern[at] == "\\" else 1
            return at + 1
        flags = _FLAGS.match(pattern, at)
        if flags:
            on, off, end = flags.groups()
            if "x" in on + (off or "") or "V" in on + (off or ""):
                raise PatternError("the inline flags x (verbose) and V0/V1 are not accepted")
            self.multiline = self.multiline or "m" in on
            if end == ")":  # flags for the rest of the pattern: no group
                return flags.end()
        if len(self.groups) > MAX_NESTING:
            raise PatternError(f"it nests groups more than {MAX_NESTING} deep")
        self.groups.append([0, 0])
        if flags:
            return flags.end()
        # "(?" starts a group of some kind ("(?:", "(?=", "(?P<name>", …): what follows the
        # "?" is read as ordinary characters, which at most counts a few extra elements.
        return at + 2 if pattern.startswith("(?", at) else at + 1

    def close(self) -> None:
        if len(self.groups) == 1:
            raise PatternError("a parenthesis closes no group (unbalanced parenthesis)")
        size = self.groups.pop()[0] + 1
        self.item(size)

    def set_end(self, at: int) -> int:
        """Where the character set opening at `at` ends (as regex reads version 0 sets: a "]"
        first is a member, "\\" escapes one character, a POSIX class is one member)."""
        pattern = self.pattern
        at += 2 if pattern.startswith("[^", at) else 1
        first = True
        while at < len(pattern):
            posix = _POSIX.match(pattern, at)
            if posix:
                at = posix.end()
            elif pattern[at] == "\\":
                at += 2
            elif pattern[at] == "]" and not first:
                return at + 1
            else:
                at += 1
            first = False
        raise PatternError("a character set is not closed (missing ])")


def prepared(pattern: str) -> tuple[str, int]:
    """(the pattern as PIE compiles it, its expanded size), or PatternError. JSON Schema
    patterns are ECMA-262's, where `$` matches only at the very end; Python's matches before a
    final newline too, so each `$` becomes `\\Z` (unless the pattern turns on (?m) itself)."""
    if len(pattern) > MAX_LENGTH:
        raise PatternError(f"it is {len(pattern):,} characters long, over {MAX_LENGTH:,}")
    scan = _Scan(pattern)
    size = scan.run()
    if scan.multiline:
        return pattern, size
    parts, start = [], 0
    for at in scan.dollars:
        parts += [pattern[start:at], r"\Z"]
        start = at + 1
    return "".join([*parts, pattern[start:]]), size


_CACHE = SizedCache(CACHED_SIZE, count=1024)
_COMPILES = itertools.count(1)


def compiled(pattern: str) -> regex.Pattern:
    """The compiled pattern, or PatternError saying why it cannot be used."""
    found = _CACHE.get(pattern)
    if found is not None:
        return found
    source, size = prepared(pattern)
    tick(size)  # compiling counts against the budget
    try:
        # Kept out of regex's own cache (500 patterns): ours is bounded by size.
        found = regex.compile(source, flags=regex.V0, cache_pattern=False)
    except (regex.error, ValueError, OverflowError, RecursionError, MemoryError) as exc:
        raise PatternError(str(exc) or type(exc).__name__) from None
    _CACHE.put(pattern, found, size)
    # regex remembers every pattern it compiled, even one kept out of its cache, in a table it
    # trims only when its own cache fills up: clear both now and then.
    if next(_COMPILES) % 256 == 0:
        regex.purge()
    return found


def problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used (None when it can)."""
    try:
        compiled(pattern)
    except PatternError as exc:
        return str(exc)
    return None


def search(pattern: str, text: str) -> bool | None:
    """Whether `pattern` matches somewhere in `text`, bounded by the pattern timeout and the
    budget; None when it timed out. PatternError when the pattern cannot be used."""
    found = compiled(pattern)
    allowed = remaining()
    if allowed <= 0:
        raise BudgetExceeded
    try:
        return found.search(text, timeout=min(allowed, TIMEOUT_SECONDS)) is not None
    except TimeoutError:
        if allowed < TIMEOUT_SECONDS:
            raise BudgetExceeded from None
        return None
