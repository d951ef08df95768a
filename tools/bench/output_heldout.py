"""Score the round-8 held-out outputs (``tests/data/output_heldout.json``) per category, for the tree on PYTHONPATH.

Each case is parsed whole and streamed (one character at a time), with no tools and with the case's tools; it counts
as right only when all four give the expected thinking, visible content and calls. Run it on a baseline tree to get
the before figures::

    PYTHONPATH=/path/to/baseline python3 tools/bench/output_heldout.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "output_heldout.json"


def outcome(case: dict[str, Any]) -> str | None:
    """None when the case is read as expected every way; else what went wrong, for the report."""
    from agentkit.gemma4 import StreamParser, parse_response

    default = [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    for tools in (None, case["tools"] or default):
        whole = parse_response(case["text"], tools)
        parser = StreamParser(tools)
        for ch in case["text"]:
            parser.feed(ch)
        streamed = parser.finish()
        for result in (whole, streamed):
            got = {
                "thinking": result.thinking,
                "content": result.content,
                "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in result.tool_calls],
            }
            if got != case["expected"]:
                return f"tools={'yes' if tools else 'no'}: got {got!r}"
    return None


def main() -> None:
    import agentkit

    data = json.loads(DATA.read_text(encoding="utf-8"))
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    verbose = "-v" in sys.argv
    for case in data["cases"] + data["negatives"]:
        total[case["category"]] += 1
        wrong = outcome(case)
        if wrong is None:
            right[case["category"]] += 1
        elif verbose:
            print(f"  {case['id']}: {wrong}")
    print(f"agentkit from {Path(agentkit.__file__).parent}")
    for category in total:
        print(f"{category:10} {right[category]:3}/{total[category]}")


if __name__ == "__main__":
    main()
