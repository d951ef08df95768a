"""ScriptedOutputLogitsProcessor: a test double that runs *inside* the real vLLM server.

A random-weight model writes gibberish, so tests that need a particular output (a tool call, a thought block,
a stop marker) script it: the request names the token ids in ``vllm_xargs={"agentkit_script": [...]}`` and this
processor masks every other token at each step, so the model's sampler must pick the scripted one. For agent
runs (several requests, one per tool round) ``agentkit_script_after`` is used instead once the prompt contains
the token id ``agentkit_switch_token`` (e.g. ``<tool_response|>``: a tool result came back). Everything
else — prompt processing, sampling, detokenization, stop strings, vLLM's Gemma 4 reasoning and tool parsers,
streaming — is the real server's. Requests without a script are untouched.

Loaded by the server with ``--logits-processors vllm_scripted_output:ScriptedOutputLogitsProcessor`` (this
directory on its PYTHONPATH); it imports vLLM, so only the server's own environment can import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

SCRIPT_KEY = "agentkit_script"
AFTER_KEY = "agentkit_script_after"
SWITCH_KEY = "agentkit_switch_token"
DELAY_KEY = "agentkit_delay_s"  # seconds to sleep per generated token: makes "stopped early" independent of load


class ScriptedOutputLogitsProcessor(AdapterLogitsProcessor):
    """Forces each request's scripted token ids, one per generated position; free sampling after the end."""

    @classmethod
    def validate_params(cls, params: Any) -> None:
        args = params.extra_args or {}
        for key in (SCRIPT_KEY, AFTER_KEY):
            script = args.get(key)
            if script is not None and not (isinstance(script, list) and all(isinstance(x, int) for x in script)):
                raise ValueError(f"{key} must be a list of token ids")

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(
        self, params: Any
    ) -> Callable[[list[int], list[int], torch.Tensor], torch.Tensor] | None:
        args = params.extra_args or {}
        if not args.get(SCRIPT_KEY):
            return None
        first = [int(x) for x in args[SCRIPT_KEY]]
        after = [int(x) for x in args.get(AFTER_KEY) or ()]
        switch = args.get(SWITCH_KEY)
        delay = float(args.get(DELAY_KEY) or 0.0)

        def force(prompt_ids: list[int], output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            ids = after if after and switch is not None and switch in prompt_ids else first
            step = len(output_ids)
            if delay:
                time.sleep(delay)
            if step < len(ids):
                logits.fill_(float("-inf"))
                logits[ids[step]] = 0.0
            return logits

        return force
