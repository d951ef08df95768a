"""What parsing costs, this tree against another, measured side by side: does tolerant parsing stay cheap?

Figures (the best of a few batches, CPU time of the process):

- whole text / streaming (4-character chunks) of a ~2,000-token output (thinking, text, 5 calls; see
  ``protocol.make_output``), without tools and with 20 tools declared (recovery on: call boundaries checked);
- streaming and whole-text parsing of every text of both tolerant-parsing corpora (``tests/data/toolcall_corpus.json``
  and ``toolcall_heldout.json``, cases and negatives) with their tools: the drifted outputs recovery exists for;
- streaming every text of ``output_heldout.json`` without tools: thinking-channel deviations, leaked end markers.

``--baseline DIR`` measures the agentkit found in DIR too (e.g. ``git archive REV agentkit | tar -x -C DIR``): worker
processes of each tree take turns round by round, so a machine that gets busier mid-run moves both alike, and the
ratio (this tree / baseline) is printed per figure.

Run: ``python tools/bench/parse_cost.py [--baseline DIR]`` (about a minute with a baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
ROUNDS = 5
BATCHES = 3
CHUNK = 4


def _figures(batch: int) -> dict[str, float]:
    """Seconds of CPU per run of each figure (best of BATCHES batches of ``batch`` runs), in this process."""
    from agentkit.gemma4 import StreamParser, parse_response  # the tree on PYTHONPATH

    sys.path.insert(0, str(Path(__file__).parent))
    from protocol import make_output, make_tools

    tools = make_tools(20)
    out = make_output(1)
    corpus: list[tuple[str, Any]] = []
    for name in ("toolcall_corpus.json", "toolcall_heldout.json"):
        data = json.loads((DATA / name).read_text(encoding="utf-8"))
        corpus += [(c["text"], c["tools"]) for c in data["cases"] + data["negatives"]]
    data = json.loads((DATA / "output_heldout.json").read_text(encoding="utf-8"))
    around = [c["text"] for c in data["cases"] + data["negatives"]]  # round 8: thinking, ends, leaked tokens

    def stream(text: str, declared: Any) -> None:
        parser = StreamParser(declared)
        for i in range(0, len(text), CHUNK):
            parser.feed(text[i : i + CHUNK])
        parser.finish()

    def corpus_stream() -> None:
        for text, declared in corpus:
            stream(text, declared)

    def corpus_whole() -> None:
        for text, declared in corpus:
            parse_response(text, declared)

    cases: dict[str, Callable[[], object]] = {
        "output, whole text, no tools": lambda: parse_response(out),
        "output, whole text, 20 tools": lambda: parse_response(out, tools),
        "output, streamed, no tools": lambda: stream(out, None),
        "output, streamed, 20 tools": lambda: stream(out, tools),
        f"corpora ({len(corpus)} texts), streamed": corpus_stream,
        f"corpora ({len(corpus)} texts), whole text": corpus_whole,
        f"around the calls ({len(around)} texts), streamed": lambda: [stream(t, None) for t in around],
    }
    result = {}
    for label, fn in cases.items():
        fn()
        best = float("inf")
        for _ in range(BATCHES):
            t0 = time.process_time()
            for _ in range(batch):
                fn()
            best = min(best, (time.process_time() - t0) / batch)
        result[label] = best
    return result


def _worker(tree: Path, batch: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import agentkit, parse_cost; "
    code += f"assert agentkit.__file__.startswith({str(tree)!r}), agentkit.__file__; "  # not the installed one
    code += f"print(json.dumps(parse_cost._figures({batch})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd="/")
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a directory holding the agentkit package to compare with")
    parser.add_argument("--batch", type=int, default=20, help="runs per timed batch")
    args = parser.parse_args()
    trees = {"this tree": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    for name, tree in trees.items():
        if not (tree / "agentkit" / "gemma4").is_dir():
            sys.exit(f"{name}: {tree} holds no agentkit/gemma4 package; give the directory that contains agentkit/")
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    for _ in range(ROUNDS):  # the trees take turns, so load changes hit both
        for name, tree in trees.items():
            for label, seconds in _worker(tree, args.batch).items():
                best[name][label] = min(best[name].get(label, float("inf")), seconds)
    mine = best["this tree"]
    header = f"{'figure':40} {'this tree':>12}"
    if args.baseline:
        header += f" {'baseline':>12} {'ratio':>7}"
    print(f"CPU time per run, best of {ROUNDS} rounds x {BATCHES} batches of {args.batch}")
    print(header)
    for label, seconds in mine.items():
        line = f"{label:40} {seconds * 1e3:9.3f} ms"
        if args.baseline:
            base = best["baseline"][label]
            line += f" {base * 1e3:9.3f} ms {seconds / base:7.2f}"
        print(line)


if __name__ == "__main__":
    main()
