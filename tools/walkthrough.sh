#!/usr/bin/env bash
# A newcomer's first ten minutes, scripted: a fresh clone in a fresh virtualenv under /tmp, the README's install
# command, `agentkit --help`, `agentkit demo`, a run with the python tool on a scripted model, `doctor`, the
# no-backend message (also as --json), README's Python snippets as written (on a scripted model), the README config
# example, a media file of the wrong kind, tracing with no collector running, `mcp serve` with a client, a batch, a
# continued session, the usual slips (a misspelt option or engine, an address without its engine), `models` of a
# server URL with no model, and `run --json | head -n1` on vLLM. Every step must succeed (or fail the documented
# way) with no traceback; each is timed.
# (`demo --tui` and `chat` need a terminal: tests/cli/test_first_contact.py and tests/tui drive them in a pilot.)
#
# Usage: tools/walkthrough.sh [--with-tests]   (--with-tests also runs the README's test command in the venv)
# With AGENTKIT_VLLM_BASE_URL set (a running vLLM server), the batch and a chat-free run also go to that server.
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

vllm_url="${AGENTKIT_VLLM_BASE_URL:-}"
export AGENTKIT_HOME="$work/home" AGENTKIT_CONFIG="$work/config.toml" OLLAMA_HOST=127.0.0.1:9
unset AGENTKIT_BACKEND AGENTKIT_MODEL AGENTKIT_TOOLS AGENTKIT_WORKSPACE PYTHONPATH || true
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || true
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

step "agentkit run --json with no backend (exit 3, an error line on stdout)" 3 agentkit run --json "hello"
expect out '"type": "error"'

# README's Python code blocks, as written, on a scripted model (the first block of each section).
mkdir -p "$work/ws" && echo "hello from the workspace" >"$work/ws/a.txt"
readme_block() {  # SECTION HEADING -> the file with that section's first python block
  python3 - "$work/agentkit/README.md" "$1" "$2" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read().split(sys.argv[2], 1)[1]
open(sys.argv[3], "w", encoding="utf-8").write(text.split("```python\n", 1)[1].split("```", 1)[0])
PY
}
q='<|\"|>'
cat >"$work/weather.json" <<JSON
["<|tool_call>call:get_weather{city:${q}Paris$q}<tool_call|><|tool_response>", "It is 18 °C in Paris.<turn|>"]
JSON
readme_block "## Build an agent in 10 lines" "$work/ten_lines.py"
step "README: Build an agent in 10 lines (scripted model)" 0 env AGENTKIT_BACKEND="scripted:$work/weather.json" \
  python "$work/ten_lines.py"
expect out "It is 18 °C in Paris."
cat >"$work/invoice.json" <<JSON
["<|tool_call>call:final_result{customer:${q}ACME Corp$q,lines:[${q}2 bolts$q],total:3.75}<tool_call|><|tool_response>"]
JSON
readme_block "## Structured output" "$work/structured.py"
step "README: Structured output (scripted model)" 0 env AGENTKIT_BACKEND="scripted:$work/invoice.json" \
  python "$work/structured.py"
expect out "ACME Corp 3.75"
readme_block "## Tools and safety" "$work/tools_section.py"
{ cat "$work/tools_section.py"; echo "print(sorted(agent.tools))"; } >"$work/tools_check.py"
step "README: Tools and safety (as written, then its agent's tools listed)" 0 sh -c "cd '$work/ws' && \
  AGENTKIT_BACKEND='scripted:$work/weather.json' python '$work/tools_check.py'"
expect out "'run_python'"
cat >"$work/time.json" <<JSON
["<|tool_call>call:get_current_time{timezone:${q}Asia/Tokyo$q}<tool_call|><|tool_response>", "Late in Tokyo.<turn|>"]
JSON
readme_block "## MCP" "$work/mcp_section.py"
step "README: MCP with mcp-server-time (scripted model)" 0 env AGENTKIT_BACKEND="scripted:$work/time.json" \
  python "$work/mcp_section.py"
expect out "Late in Tokyo."

# README's config example, as printed: its workspace does not exist yet, so doctor and run both say how to fix it.
python3 - "$work/agentkit/README.md" "$work/readme-config.toml" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read().split("## Configuration", 1)[1]
open(sys.argv[2], "w", encoding="utf-8").write(text.split("```toml\n", 1)[1].split("```", 1)[0])
PY
step "agentkit doctor --config README's example (no servers: exit 3; workspace missing)" 3 \
  env HOME="$work/home" agentkit doctor --no-probe --config "$work/readme-config.toml"
expect out "✗ workspace"
expect out "mkdir -p"

printf 'just text' >"$work/note.txt"
step "agentkit run --image note.txt (a text file: exit 2)" 2 \
  agentkit run --backend "scripted:$work/weather.json" --image "$work/note.txt" "what is this?"
expect err "the file is text, not image"

step "tracing with no collector listening (one line, bounded)" 0 env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 \
  agentkit run --no-save --backend "scripted:$work/weather.json" "weather?"
expect err "could not be sent to http://127.0.0.1:9"

cat >"$work/mcp_client.py" <<'PY'
import sys
from agentkit import Agent
from agentkit.mcp import MCPServerStdio
from agentkit.testing import ScriptedBackend

server = MCPServerStdio("agentkit", ["mcp", "serve", "--tools", "python,files", "-w", sys.argv[1]])
backend = ScriptedBackend(['<|tool_call>call:read_file{path:<|"|>a.txt<|"|>}<tool_call|><|tool_response>', "ok<turn|>"])
with Agent(backend, toolsets=[server]) as agent:
    agent.run("read a.txt")
    print(next(m["content"] for m in agent.messages if m["role"] == "tool"))
PY
step "agentkit mcp serve, read by an MCP client" 0 python "$work/mcp_client.py" "$work/ws"
expect out "hello from the workspace"

batch_backend="scripted:$work/weather.json"
if [ -n "$vllm_url" ]; then
  model=$(python3 -c "import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1] + '/v1/models'))['data'][0]['id'])" "$vllm_url")
  batch_backend="vllm://${vllm_url#http://}/$model"
fi
printf 'What is 2+2?\n{"id": "q2", "task": "Name a river"}\n' >"$work/tasks.txt"
step "agentkit batch (2 tasks; $batch_backend)" 1 \
  agentkit batch "$work/tasks.txt" -o "$work/results.jsonl" --backend "$batch_backend" --max-tokens 16
report+=("  $(wc -l <"$work/results.jsonl") results; exit 1 while a task failed (a scripted model runs out, a random one hits --max-tokens)")

# The slips of a first session: each answered with the fix (exit 2), never a bare "invalid".
step "a misspelt option (--backnd): the command's usage, the right name" 2 agentkit run --backnd x "hi"
expect err "did you mean --backend?"
step "a misspelt engine (olama://): the URL meant" 2 agentkit run --backend olama://localhost:11434/gemma4:e4b "hi"
expect err "did you mean ollama://localhost:11434/gemma4:e4b?"
step "a server address without its engine: both forms offered" 2 agentkit run --backend localhost:8000/m "hi"
expect err "vllm://localhost:8000/m or ollama://localhost:8000/m"
if [ -n "$vllm_url" ]; then
  server="vllm://${vllm_url#http://}"
  step "agentkit models -b vllm://HOST:PORT (the model's name not known yet)" 0 agentkit models --backend "$server"
  expect out "$model"
  expect err "use one with: agentkit run --backend"
  # `| head -n1` closes the pipe mid-stream: exit 0 and nothing on stderr (no asyncio tracebacks).
  step "agentkit run --json ... | head -n1 (vLLM; the reader leaves mid-stream)" 0 sh -c \
    "agentkit run --backend '$batch_backend' --json --no-save --max-tokens 400 'write' 2>'$work/pipe.err' | head -n1 >/dev/null && ! test -s '$work/pipe.err'"
fi

step "agentkit run, then -c continues it" 0 sh -c "agentkit run --backend 'scripted:$work/weather.json' 'weather?' && \
  agentkit run -c --backend 'scripted:$work/weather.json' 'and tomorrow?'"
step "agentkit sessions list --json (the continued session has both turns)" 0 agentkit sessions list --json
python3 -c "import json,sys; s=json.load(open(sys.argv[1]))[0]; sys.exit(not (s['title'] == 'weather?' and s['message_count'] == 8))" \
  "$log.out" || { failures=$((failures + 1)); report+=("  ...the newest session is not 'weather?' with 8 messages  FAILED"); }

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
