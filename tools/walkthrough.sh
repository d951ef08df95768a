#!/usr/bin/env bash
# A newcomer's first ten minutes, scripted: a fresh clone in a fresh virtualenv under /tmp, the README's install
# command, `agentkit --help`, `agentkit demo`, a run with the python tool on a scripted model, `doctor`, and the
# no-backend message. Every step must succeed (or fail the documented way) with no traceback; each is timed.
#
# Usage: tools/walkthrough.sh [--with-tests]   (--with-tests also runs the README's test command in the venv)
# Uses the committed HEAD of this checkout (a fresh clone sees nothing else).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
with_tests=0
[ "${1:-}" = "--with-tests" ] && with_tests=1

work=$(mktemp -d /tmp/agentkit-walkthrough.XXXXXX)
trap 'rm -rf "$work"' EXIT
log="$work/log"
failures=0
report=()

# step NAME EXPECTED_EXIT COMMAND...: run it, keep its output, check the exit status and that nothing crashed.
step() {
  local name=$1 expected=$2
  shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  set +e
  "$@" >"$log.out" 2>"$log.err"
  rc=$?
  set -e
  t1=$(date +%s.%N)
  local secs
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  local verdict="ok"
  if [ "$rc" != "$expected" ]; then
    verdict="FAILED (exit $rc, expected $expected)"
  elif grep -q "Traceback" "$log.out" "$log.err"; then
    verdict="FAILED (a traceback)"
  fi
  if [ "$verdict" != "ok" ]; then
    failures=$((failures + 1))
    echo "---- $name: stdout" && tail -20 "$log.out"
    echo "---- $name: stderr" && tail -20 "$log.err"
  fi
  report+=("$(printf '%-58s %7ss  %s' "$name" "$secs" "$verdict")")
  echo "[$secs s] $name: $verdict" >&2
}

# expect FILE TEXT: a step's output must contain TEXT (so a silent failure is caught, not only a crash).
expect() {
  if ! grep -qF -- "$2" "$log.$1"; then
    failures=$((failures + 1))
    report+=("$(printf '%-58s %8s  %s' "  ...its $1 lacks: $2" "" "FAILED")")
    echo "---- expected in $1: $2" && tail -20 "$log.$1"
  fi
}

step "git clone (a fresh checkout)" 0 git clone --quiet "$repo" "$work/agentkit"
cd "$work/agentkit"
step "python3 -m venv (fresh, under /tmp)" 0 python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
step "README install: pip install -e '.[dev]'" 0 pip install -q -e '.[dev]'

export AGENTKIT_HOME="$work/home" AGENTKIT_CONFIG="$work/config.toml" OLLAMA_HOST=127.0.0.1:9
unset AGENTKIT_BACKEND AGENTKIT_MODEL AGENTKIT_TOOLS AGENTKIT_WORKSPACE PYTHONPATH || true
cd "$work"

step "agentkit --help" 0 agentkit --help
expect out "usage: agentkit"
step "agentkit (no arguments prints the help)" 0 agentkit
expect out "demo"
step "agentkit demo --yes" 0 agentkit demo --yes
expect err "scripted stand-in plays the model"
expect out "best month: 2026-04"
expect err "✓ run_python"

cat >"$work/outputs.json" <<'JSON'
["<|tool_call>call:run_python{code:<|\"|>import sys\nprint(sum(range(10)), sys.version_info[:2])<|\"|>}<tool_call|><|tool_response>", "The sandbox printed the sum.<turn|>"]
JSON
step "agentkit run --tools python (scripted model)" 0 \
  agentkit run --yes --tools python --backend "scripted:$work/outputs.json" "add the numbers below 10"
expect err "✓ run_python"
expect err "45"
expect out "The sandbox printed the sum."

step "agentkit doctor --json --tools python (sandbox from this venv)" 0 \
  agentkit doctor --json --no-probe --tools python --backend "scripted:$work/outputs.json"
expect out '"check": "sandbox"'
expect out "runs Python"

step "agentkit run with no backend (exit 3, says what to do)" 3 agentkit run "hello"
expect err "agentkit demo"
expect err "pip install -e '.[transformers]'"

if [ "$with_tests" = 1 ]; then
  cd "$work/agentkit"
  step "README test: python3 -m pytest -q" 0 python3 -m pytest -q -p no:cacheprovider
  report+=("  $(tail -1 "$log.out")")
  cd "$work"
fi

echo
printf '%s\n' "${report[@]}"
if [ "$failures" -gt 0 ]; then
  echo "walkthrough: $failures problem(s)" >&2
  exit 1
fi
echo "walkthrough: every step worked"
