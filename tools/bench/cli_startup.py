"""How long ``agentkit --help`` takes next to a bare ``python -c pass``, measured side by side.

The console script does ``from agentkit.cli import main; sys.exit(main())``; that is what is timed here (the
same interpreter, so a pyenv shim or a venv launcher adds nothing to either side). Both commands run in turns,
round by round, so load on a shared machine hits both alike; printed: the median and the minimum wall time
of each and the ratio help / bare. The goal (issue 13) is a ratio of at most 4.

Run: ``python tools/bench/cli_startup.py [ROUNDS]`` from the repository root (it imports this checkout).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "agentkit --help": [sys.executable, "-c", "import sys; from agentkit.cli import main; sys.exit(main(['--help']))"],
}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():  # warm the disk cache and .pyc files; check that each command works
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    for _ in range(rounds):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    print(f"{rounds} rounds, interleaved, {sys.executable} ({sys.version.split()[0]})")
    for name, ts in times.items():
        print(f"  {name:<18} median {statistics.median(ts) * 1000:7.1f} ms   min {min(ts) * 1000:7.1f} ms")
    bare, help_ = times["python -c pass"], times["agentkit --help"]
    print(
        f"  ratio help / bare: median {statistics.median(help_) / statistics.median(bare):.1f}x, "
        f"min {min(help_) / min(bare):.1f}x (goal: <= 4x)"
    )


if __name__ == "__main__":
    main()
