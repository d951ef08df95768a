"""Regular expressions and globs from the model, matched by RE2 in time linear in the text.

Python's ``re`` backtracks: a pattern such as ``(a+)+$``, or the glob ``*a*a*a…*b`` translated to a regex,
takes exponential time on a line that almost matches, and it holds the GIL while it does, so neither a tool
timeout nor Ctrl-C gets to run. The patterns come from the model (and so from whatever text it read), so they
are compiled with RE2 (``google-re2``), whose automata never backtrack: matching is linear in the text, memory
per pattern is capped (``max_mem``), and the GIL is released while it runs. The price is RE2's syntax: no
lookaround and no backreferences (the features that need backtracking); using them is a clear error.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2

from agentkit.errors import ToolError

__all__ = ["Matcher", "compile_glob", "compile_regex"]

_MAX_PATTERN_CHARS = 4096
_MAX_MEM = 8 << 20  # RE2's default; a larger program is refused instead of growing


class Matcher(Protocol):
    """The part of a compiled RE2 pattern the tools use."""

    def search(self, text: str | bytes) -> Any: ...

    def fullmatch(self, text: str) -> Any: ...


def _options(*, ignore_case: bool = False) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every bad pattern to stderr, through the CLI and TUI
    options.max_mem = _MAX_MEM
    options.case_sensitive = not ignore_case
    return options


def _python_to_re2(pattern: str) -> str:
    r"""Python's ``\Z`` (end of text) is spelled ``\z`` in RE2; everything else RE2 accepts means the same."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append("\\z" if pattern[i + 1] == "Z" else pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def _compile(pattern: str, ignore_case: bool, what: str, shown: str) -> Matcher:
    if len(pattern) > _MAX_PATTERN_CHARS:
        raise ToolError(f"the {what} is {len(pattern)} characters long; keep it under {_MAX_PATTERN_CHARS}")
    try:
        compiled = re2.compile(pattern, _options(ignore_case=ignore_case))
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ToolError(
            f"invalid {what} {shown!r}: {reason}. Patterns use RE2 syntax: Python's re without lookaround "
            "(?=, ?!, ?<=, ?<!) and backreferences (\\1), which can take exponential time"
        ) from None
    # google-re2 keeps the last 128 patterns, each with up to max_mem of automaton: 1 GB a model could fill with
    # distinct patterns. Ours live only as long as one tool call, so the cache is emptied at once.
    re2.purge()
    return compiled  # type: ignore[no-any-return]


def compile_regex(pattern: str, *, ignore_case: bool = False) -> Matcher:
    """A model's regular expression (Python syntax minus lookaround and backreferences), for ``search``."""
    return _compile(_python_to_re2(pattern), ignore_case, "regular expression", pattern)


def compile_glob(pattern: str) -> Matcher:
    """A glob with ``**`` as a pattern over '/'-separated relative paths, for ``fullmatch``.

    ``*`` and ``?`` stop at '/', ``**/`` spans whole directories, ``[abc]``/``[!abc]`` are character classes.
    """
    out: list[str] = ["(?s)"]  # a file name may contain a newline; '*' must still match it
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            if body.startswith("^"):
                body = "\\" + body  # a literal '^' in a glob class, not negation
            out.append(("[^/" if negate else "[") + body + "]")  # a negated class never matches '/'
            i = end + 1
        else:
            out.append(re2.escape(c))
            i += 1
    return _compile("".join(out), False, "glob pattern", pattern)
