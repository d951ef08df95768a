"""``agentkit doctor``: is everything a run needs actually there, and if not, what to do about it.

Each check prints one line (✓, ! or ✗) and, when something is wrong, the backend's own how-to-fix
message. The tool-calling probe runs the real model once on a trivial tool, because a backend that
answers but never emits a well-formed call (wrong template, special tokens stripped) is the most common
silent failure with local models.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.text import Text

from agentkit import Agent, SamplingParams, SessionStore, tool
from agentkit.assemble import build_backend
from agentkit.backends import is_server_address
from agentkit.backends.base import Backend
from agentkit.errors import AgentkitError, BackendUnavailable, ModelNotFound, UserError

from .common import EXIT_BACKEND, EXIT_FAILED, EXIT_OK, EXIT_USAGE, safe_json, terminal_safe
from .config import DEFAULT_TRANSFORMERS_SIZE, Settings, default_backend_url, hf_model_available
from .models import only_served_model, served_models

__all__ = ["Check", "check_backend", "check_mcp_servers", "check_sandbox", "check_tools", "doctor_command"]

PROBE_WORD = "marmalade"
PROBE_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report; ``status`` is ``ok``, ``warn`` or ``fail``; ``unavailable`` maps to exit 3."""

    name: str
    status: str
    detail: str
    fix: str = ""
    unavailable: bool = False
    usage: bool = False  # the user wrote something invalid (a backend URL): exit 2, as every other command


@tool
def agentkit_probe(word: str) -> str:
    """Echo a word back; agentkit doctor uses it to check that tool calling works.

    Args:
        word: the word to echo.
    """
    return f"probe ok: {word}"


async def _probe(url: str, backend: Backend) -> Check:
    agent = Agent(
        backend,
        tools=[agentkit_probe],
        max_steps=3,
        sampling=SamplingParams(temperature=0.0, max_tokens=512),
    )
    try:
        result = await asyncio.wait_for(
            agent.arun(f'Call the agentkit_probe tool with word "{PROBE_WORD}", then reply with what it returned.'),
            PROBE_TIMEOUT_S,
        )
    except TimeoutError:
        return Check(f"tool probe  {url}", "fail", f"no answer within {PROBE_TIMEOUT_S:g}s", "is the machine busy?")
    calls = [c for c in result.tool_calls if c.name == "agentkit_probe"]
    if not calls:
        return Check(
            f"tool probe  {url}",
            "fail",
            f"the model answered without calling the tool (stop: {result.stop_reason})",
            "use an instruction-tuned Gemma 4 model (…-it / gemma4:*) and keep special tokens in the output",
        )
    if calls[0].arguments.get("word") != PROBE_WORD or not calls[0].ok:
        return Check(
            f"tool probe  {url}", "warn", f"the call came back odd: {calls[0].arguments} {calls[0].error or ''}"
        )
    return Check(f"tool probe  {url}", "ok", f"called agentkit_probe in {result.timings.total_s:.1f}s")


# Server engines retry a refused connection or a 5xx (about 4 s in all, for a server that is restarting); doctor
# reports what is there now, so a server that is not running is said at once, not after the retries.
_SERVER_SCHEMES = ("ollama", "vllm", "vllms")


async def check_backend(url: str, *, probe: bool) -> list[Check]:
    """Reachability and model presence through ``backend.check()``, then optionally the tool probe."""
    options = {"retries": 0} if url.split(":", 1)[0].lower() in _SERVER_SCHEMES else {}
    if is_server_address(url):  # as run does: a server serving one model needs no more
        try:
            url = only_served_model(url, await served_models(url, **options), quiet=True)
        except UserError as exc:  # several models (or none): which one is the user's to say
            return [Check(f"backend     {url}", "fail", "no model named", str(exc), usage=True)]
        except AgentkitError as exc:
            return [_backend_failed(url, exc)]
    try:
        backend = build_backend(url, **options)
    except (UserError, ImportError) as exc:
        # A bad URL is a usage error (2); a missing extra makes the backend unavailable (3), as the README says.
        usage, missing = isinstance(exc, UserError), isinstance(exc, ImportError)
        return [Check(f"backend     {url}", "fail", "cannot be built", str(exc), unavailable=missing, usage=usage)]
    except AgentkitError as exc:
        # In-process backends load the model when built: a missing model is reported here, not in check().
        return [_backend_failed(url, exc)]
    # One backend for the check and the probe: an in-process model is loaded once, not twice.
    try:
        try:
            await backend.check()
        except AgentkitError as exc:
            return [_backend_failed(url, exc)]
        checks = [
            Check(f"backend     {url}", "ok", f"reachable, model {backend.model} is there"),
            _constraint(url, backend),
        ]
        compiling = getattr(backend, "compile_status", None)  # in-process engines compile in the background
        if isinstance(compiling, str):
            checks.append(Check(f"compile     {url}", "ok", compiling))
        if probe:
            try:
                checks.append(await _probe(url, backend))
            except AgentkitError as exc:
                checks.append(Check(f"tool probe  {url}", "fail", type(exc).__name__, str(exc)))
        return checks
    finally:
        await backend.aclose()


async def check_mcp_servers(settings: Settings) -> list[Check]:
    """Start each configured MCP server, list its tools (marking those that need approval), stop it."""
    from agentkit.assemble import build_toolsets

    checks: list[Check] = []
    for server in build_toolsets(settings.mcp_servers):
        label = f"mcp         {server.name}"
        try:
            await server.start()
            tools = server.list_tools()
        except AgentkitError as exc:
            checks.append(Check(label, "fail", f"{server.describe()} did not start", str(exc)))
            continue
        finally:
            await server.stop()
        names = ", ".join(t.name + ("" if not t.side_effects else " (asks)") for t in tools) or "no tools"
        left_out = getattr(server, "left_out", {})
        hint = "; ".join(f"{name} left out: {why}" for name, why in left_out.items())
        checks.append(Check(label, "ok", f"{server.describe()} — {len(tools)} tool(s): {names}", hint))
    return checks


def _constraint(url: str, backend: Backend) -> Check:
    """Whether tool calls are grammar-constrained on this backend (Agent's default where it can)."""
    caps = backend.capabilities
    if caps.grammar:
        return Check(
            f"tool calls  {url}", "ok", "grammar-constrained (tool_choice works; constrain_tool_calls=False: off)"
        )
    return Check(
        f"tool calls  {url}",
        "warn",
        "not grammar-constrained: " + (caps.grammar_note or "the backend cannot"),
        "tool_choice other than 'auto' needs a constraining backend (vllm:// native mode, transformers:// + xgrammar)",
    )


def _backend_failed(url: str, exc: AgentkitError) -> Check:
    """A backend that could not be built or checked; unreachable or without its model maps to exit 3."""
    unavailable = isinstance(exc, BackendUnavailable | ModelNotFound)
    return Check(f"backend     {url}", "fail", type(exc).__name__, str(exc), unavailable=unavailable)


def check_sandbox(needed: bool) -> Check:
    """The python tool's sandbox really runs Python (with an import from site-packages), and how it caps memory."""
    fix = "install bubblewrap: sudo apt-get install bubblewrap (Debian/Ubuntu) or sudo dnf install bubblewrap"
    level = "fail" if needed else "warn"
    if shutil.which("bwrap") is None:
        return Check("sandbox     bwrap", level, "not installed (the python tool needs it)", fix)
    from agentkit.tools import PythonSandbox

    try:
        box = PythonSandbox(timeout_s=20)
        result = box.run("import httpx, sys\nprint(sys.version_info[0])")
    except AgentkitError as exc:
        # The error says what to do; only bubblewrap's own refusal needs the user-namespace hint on top.
        userns = "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run where they work"
        return Check(
            "sandbox     bwrap",
            level,
            f"cannot run Python in the sandbox: {exc}",
            userns if "namespace" in str(exc) else "",
        )
    if result.stdout != "3\n":
        return Check("sandbox     bwrap", level, f"Python in the sandbox failed: {result.stderr.strip()[-300:]}")
    if not box.memory_cap:
        return Check(
            "sandbox     bwrap",
            "warn",
            "runs Python, but memory is limited per process only (no memory cgroup can be made here)",
            "run agentkit as root or in a delegated cgroup (systemd-run --user --scope -p Delegate=yes) to cap a "
            "whole run's memory",
        )
    return Check("sandbox     bwrap", "ok", f"runs Python (no network, own PID namespace, memory by {box.memory_cap})")


def _backend_urls(settings: Settings) -> tuple[list[str], list[Check]]:
    urls: list[str] = []
    checks: list[Check] = []
    if settings.backend_replicas:  # --backend repeated: each replica is checked on its own
        urls.extend(settings.backend_replicas)
    elif settings.backend_url:
        urls.append(settings.backend_url)
    else:
        try:
            url = default_backend_url()
        except BackendUnavailable as exc:
            checks.append(Check("default     (none configured)", "fail", "no backend found", str(exc), True))
        else:
            model = url.split(":", 1)[1]
            if url.startswith("transformers:") and not settings.allow_download and not hf_model_available(model):
                # Checking it would load it, and loading it would start a download nobody agreed to.
                checks.append(
                    Check(
                        "default     (none configured)",
                        "warn",
                        f"would use {url}, not downloaded yet ({DEFAULT_TRANSFORMERS_SIZE}); not checked",
                        "agentkit run asks before downloading it; --allow-download agrees in advance "
                        "(agentkit doctor --allow-download checks it after downloading)",
                    )
                )
            else:
                urls.append(url)
                checks.append(Check("default     (none configured)", "ok", f"would use {url}"))
    for url in settings.named_backends.values():
        if url not in urls:
            urls.append(url)
    return urls, checks


def check_tools(settings: Settings) -> Check | None:
    """The tools and workspace the settings name can be built, as ``run`` would build them (a configured
    workspace that does not exist, ``files`` without one); ``None`` without tools (the workspace is then unused)."""
    if not settings.tools:
        return None
    from agentkit.assemble import build_tools

    target = str(settings.workspace) if settings.workspace is not None else "(no workspace)"
    try:
        build_tools(settings)
    except UserError as exc:
        return Check(f"workspace   {target}", "fail", str(exc), usage=True)
    except AgentkitError as exc:  # bubblewrap missing for python: reported here, and the sandbox line follows
        return Check(f"workspace   {target}", "fail", str(exc))
    return Check(f"workspace   {target}", "ok", f"tools: {', '.join(settings.tools)}")


def _print(console: Console, check: Check) -> None:
    mark, style = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red")}[check.status]
    # Details quote servers and the system (error messages, paths): never let them drive the terminal.
    console.print(Text.assemble((f"{mark} ", style), (check.name, "bold"), "  ", terminal_safe(check.detail)))
    if check.fix:
        for line in terminal_safe(check.fix).splitlines():
            console.print(Text(f"    {line}", style="dim" if check.status == "ok" else style.replace("bold ", "")))


def _as_json(check: Check) -> dict[str, object]:
    data = asdict(check)
    # The name is the kind, padded to a column, then the target; a kind may be two words ("tool probe").
    kind, _, target = check.name.partition("  ")
    return {"check": kind.strip(), "target": target.strip(), **data}


def doctor_command(args: argparse.Namespace, settings: Settings) -> int:
    as_json = getattr(args, "json", False)
    # With --json the human lines go nowhere and one JSON object is printed at the end, for scripts and CI.
    console = Console(highlight=False, soft_wrap=True, quiet=as_json)
    path = settings.config_path
    if path is not None:
        state = "found" if path.exists() else "not found (optional)"
        console.print(Text.assemble(("· ", "dim"), ("config      ", "bold"), f"{path} — {state}"))
    sessions_root = SessionStore().root
    console.print(Text.assemble(("· ", "dim"), ("sessions    ", "bold"), str(sessions_root)))
    urls, checks = _backend_urls(settings)
    for c in checks:
        _print(console, c)

    async def run_checks() -> list[Check]:
        out: list[Check] = []
        for url in urls:
            for c in await check_backend(url, probe=not args.no_probe):
                _print(console, c)
                out.append(c)
        for c in await check_mcp_servers(settings):
            _print(console, c)
            out.append(c)
        return out

    checks += asyncio.run(run_checks())
    tools = check_tools(settings)
    if tools is not None:
        _print(console, tools)
        checks.append(tools)
    sandbox = check_sandbox(needed="python" in settings.tools)
    _print(console, sandbox)
    checks.append(sandbox)
    failed = [c for c in checks if c.status == "fail"]
    if not failed:
        code = EXIT_OK
    elif any(c.unavailable for c in failed):
        code = EXIT_BACKEND
    else:
        code = EXIT_USAGE if any(c.usage for c in failed) else EXIT_FAILED
    if as_json:
        report = {
            "ok": not failed,
            "exit_code": code,
            "config": str(path) if path is not None else None,
            "config_found": bool(path is not None and path.exists()),
            "sessions": str(sessions_root),
            "checks": [_as_json(c) for c in checks],
        }
        print(safe_json(report, indent=2))
        return code
    if not failed:
        console.print(Text("all good", style="green"))
    else:
        print(f"{len(failed)} problem(s) found", file=sys.stderr)
    return code
