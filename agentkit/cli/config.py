"""Where the command's settings come from: flags, then environment, then the TOML config file.

One resolved :class:`Settings` object is built per invocation, so every command (run, batch, chat,
doctor) sees the same precedence and the same error messages. The config file is optional; a missing
one is normal, a broken one is a usage error that names the file and the line.

Config file (``agentkit doctor`` prints where it is looked for)::

    backend = "ollama://localhost:11434/gemma4:e4b"   # or the name of an entry in [backends]
    # backend = ["vllm://a:8000/google/gemma-4-31B-it", "vllm://b:8000/google/gemma-4-31B-it"]  # replicas
    thinking = false
    tools = ["search", "fetch"]
    workspace = "~/agentkit-workspace"
    system = "You are a concise assistant."
    max_steps = 20
    temperature = 1.0                                   # also top_p, max_tokens; and num_ctx (context size)

    [backends]                                          # named backends: doctor checks all of them
    local = "ollama://localhost:11434/gemma4:e4b"
    gpu = "vllm://gpu-box:8000/google/gemma-4-31B-it"

    [mcp.servers.time]                                  # MCP servers whose tools every run gets
    command = "uvx"
    args = ["mcp-server-time"]
    env = { TZ = "UTC" }                                # optional; also: timeout = 60 (seconds per call)

    [mcp.servers.docs]
    url = "http://127.0.0.1:8000/mcp"                   # streamable HTTP; optional headers = { ... }
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from agentkit.assemble import BUILTIN_TOOLS, AgentConfig, MCPServerSpec
from agentkit.errors import BackendUnavailable, UserError
from agentkit.options import AgentOptions

__all__ = [
    "DEFAULT_OLLAMA_MODEL",
    "DEFAULT_TRANSFORMERS_MODEL",
    "DEFAULT_TRANSFORMERS_SIZE",
    "KNOWN_TOOLS",
    "MCPServerSpec",
    "Settings",
    "default_backend_url",
    "default_config_path",
    "hf_model_available",
    "load_config_file",
    "no_backend_help",
    "ollama_host",
    "resolve_settings",
    "with_model",
]

DEFAULT_OLLAMA_MODEL = "gemma4:e4b"
DEFAULT_TRANSFORMERS_MODEL = "google/gemma-4-E2B-it"
# What a first run of the in-process default would download (5 B parameters in bfloat16), said before it starts.
DEFAULT_TRANSFORMERS_SIZE = "about 10 GB"
KNOWN_TOOLS = BUILTIN_TOOLS
_SAMPLING_KEYS = ("temperature", "top_p", "max_tokens")
_CONFIG_KEYS = {
    "backend",
    "model",
    "thinking",
    "tools",
    "workspace",
    "system",
    "max_steps",
    "backends",
    "mcp",
    "num_ctx",
    *_SAMPLING_KEYS,
}
_MCP_KEYS = {"command", "args", "env", "cwd", "url", "headers", "timeout"}


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _mcp_servers(path: Path, data: Any) -> tuple[MCPServerSpec, ...]:
    """``[mcp.servers.NAME]`` tables, checked key by key (the shape other MCP clients use)."""
    where = f"config file {path}: [mcp]"
    if not isinstance(data, dict) or set(data) - {"servers"}:
        raise UserError(f"{where} holds only servers tables: [mcp.servers.NAME] with command/args/env or url")
    servers = data.get("servers", {})
    if not isinstance(servers, dict):
        raise UserError(f'{where}: servers must be tables, e.g. [mcp.servers.time] command = "uvx"')
    specs = []
    for name, entry in servers.items():
        at = f"config file {path}: [mcp.servers.{name}]"
        if not isinstance(entry, dict):
            raise UserError(f"{at} must be a table with command (and args, env) or url")
        unknown = sorted(set(entry) - _MCP_KEYS)
        if unknown:
            raise UserError(f"{at}: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(_MCP_KEYS))}")
        if ("command" in entry) == ("url" in entry):
            raise UserError(f"{at} needs either command (a program to start) or url (a streamable HTTP endpoint)")
        for key in ("command", "url", "cwd"):
            if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
                raise UserError(f"{at}: {key} must be a non-empty string")
        if "args" in entry and not (isinstance(entry["args"], list) and all(isinstance(a, str) for a in entry["args"])):
            raise UserError(f'{at}: args must be a list of strings, e.g. ["mcp-server-time"]')
        for key in ("env", "headers"):
            if key in entry and not _str_map(entry[key]):
                raise UserError(f'{at}: {key} must map names to strings, e.g. {key} = {{ NAME = "value" }}')
        timeout = entry.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise UserError(f"{at}: timeout must be a positive number of seconds")
        specs.append(
            MCPServerSpec(
                name=name,
                command=entry.get("command"),
                args=tuple(entry.get("args", ())),
                env=dict(entry.get("env", {})),
                cwd=entry.get("cwd"),
                url=entry.get("url"),
                headers=dict(entry.get("headers", {})),
                timeout_s=float(timeout) if timeout is not None else None,
            )
        )
    return tuple(specs)


def default_config_path() -> Path:
    """``$AGENTKIT_CONFIG`` if set, else ``<platform config dir>/agentkit/config.toml``."""
    env = os.environ.get("AGENTKIT_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir("agentkit")) / "config.toml"


def _check_owner(path: Path) -> None:
    """Refuse a config file another user could have written: it names programs to start (MCP servers, with their
    environment), a backend to send every conversation to, and the workspace the tools may change.

    The file must belong to this user (or root) and be writable by no one else, and its folder (where a symlink
    leads) must not let others replace it (writable by others, and not sticky as ``/tmp`` is). Writable by its
    group is allowed only when this user is the group's one member (a user private group, as most Linux systems
    make for each user): a shared primary group such as ``users`` has every local account in it. This is
    OpenSSH's rule for its config files.
    """
    try:
        st = os.stat(path)
        real = path.resolve()
        folder = os.stat(real.parent)
    except FileNotFoundError:
        return  # read_text says so, as it always did
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    uid = os.getuid()
    why, fix = "", f"chmod go-w {path}"
    if st.st_uid not in (uid, 0):
        why = f"it belongs to another user (uid {st.st_uid})"
    elif _others_write(st, uid):
        why = f"other users can write to it (mode {st.st_mode & 0o777:o}{_group_note(st)})"
    elif folder.st_uid not in (uid, 0) or (_others_write(folder, uid) and not folder.st_mode & 0o1000):
        why = f"other users can replace it: its folder {real.parent} is theirs or writable by them"
        fix = f"chmod go-w {real.parent}, or move the file to a folder of your own"
    if why:
        raise UserError(
            f"config file {path} is not used: {why}, and a config file decides which programs agentkit starts "
            f"and where conversations go. Make it yours and private ({fix}), or pass another --config"
        )


def _others_write(st: os.stat_result, uid: int) -> bool:
    """Whether users other than ``uid`` may write where ``st`` says: all of them, or a group of more than it."""
    return bool(st.st_mode & 0o002) or bool(st.st_mode & 0o020 and not _group_is_only(st.st_gid, uid))


def _group_is_only(gid: int, uid: int) -> bool:
    """Whether ``uid`` is the one member of group ``gid`` (by primary group and by the group's member list)."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(gid)
        me = pwd.getpwuid(uid).pw_name
        primary = [p.pw_uid for p in pwd.getpwall() if p.pw_gid == gid]
    except (KeyError, OSError):
        return False
    if any(u != uid for u in primary) or any(name != me for name in group.gr_mem):
        return False
    return bool(primary or group.gr_mem)  # a group without members is a set-gid program's, not this user's


def _group_note(st: os.stat_result) -> str:
    if st.st_mode & 0o002:
        return ""
    try:
        import grp

        name = grp.getgrgid(st.st_gid).gr_name
    except (KeyError, OSError):
        name = str(st.st_gid)
    return f"; its group {name!r} has other members"


def load_config_file(path: Path, *, required: bool) -> dict[str, Any]:
    """Read and check the TOML file; unknown keys are rejected so typos do not silently do nothing."""
    _check_owner(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise UserError(f"config file {path} does not exist; create it or drop --config") from None
        return {}
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        why = f"byte {exc.start}: {exc.reason}"
        raise UserError(f"config file {path} is not UTF-8 text ({why}); save it as UTF-8") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = ""
        if text.lstrip().startswith(("{", "[{")) or Path(path).suffix.lower() in (".json", ".yaml", ".yml"):
            hint = ' (the config file is TOML, not JSON or YAML: backend = "ollama://...", one key = value a line)'
        raise UserError(f"config file {path} is not valid TOML: {exc}{hint}") from exc
    unknown = sorted(set(data) - _CONFIG_KEYS)
    if unknown:
        close = {k: difflib.get_close_matches(k, sorted(_CONFIG_KEYS), n=1) for k in unknown}
        unknown = [f"{k} (did you mean {close[k][0]}?)" if close[k] else k for k in unknown]
        raise UserError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(_CONFIG_KEYS))}"
        )
    backends = data.get("backends", {})
    if not isinstance(backends, dict) or not all(isinstance(v, str) for v in backends.values()):
        raise UserError(f'config file {path}: [backends] must map names to URL strings (local = "ollama://...")')
    for key in ("model", "workspace", "system"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"config file {path}: {key} must be a string")
    if "backend" in data and not (
        isinstance(data["backend"], str)
        or (isinstance(data["backend"], list) and data["backend"] and all(isinstance(b, str) for b in data["backend"]))
    ):
        raise UserError(
            f'config file {path}: backend must be a URL string, or a list of URLs for replicas of one model ("...")'
        )
    if "thinking" in data and not isinstance(data["thinking"], bool):
        raise UserError(f"config file {path}: thinking must be true or false")
    if "max_steps" in data and (not isinstance(data["max_steps"], int) or data["max_steps"] < 1):
        raise UserError(f"config file {path}: max_steps must be a positive integer")
    if "tools" in data and not (isinstance(data["tools"], list) and all(isinstance(t, str) for t in data["tools"])):
        raise UserError(f'config file {path}: tools must be a list of names, e.g. ["search", "fetch"]')
    if "num_ctx" in data and (isinstance(data["num_ctx"], bool) or not isinstance(data["num_ctx"], int)):
        raise UserError(f"config file {path}: num_ctx must be a whole number of tokens, e.g. num_ctx = 8192")
    sampling = {key: data[key] for key in _SAMPLING_KEYS if key in data}
    if sampling:
        from agentkit.backends.base import SamplingParams

        try:
            SamplingParams(**sampling)  # the rule a value breaks, said now and with the file's name
        except UserError as exc:
            raise UserError(f"config file {path}: {exc}") from None
    if "mcp" in data:
        data["mcp"] = _mcp_servers(path, data["mcp"])
    return data


def parse_tools(value: str | list[str] | tuple[str, ...], *, where: str = "") -> tuple[str, ...]:
    """Split ``"search,python"`` into known tool names; an empty string means no tools. ``where`` names the flag,
    variable or file the value came from, for the error."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(n.strip().lower() for n in items if n.strip()))
    unknown = [n for n in names if n not in KNOWN_TOOLS]
    if unknown:
        source = f" (from {where})" if where and where != "none" else ""
        named = ", ".join(_tool_guess(n) for n in unknown)
        raise UserError(f"unknown tool(s) {named}{source}; choose from {', '.join(KNOWN_TOOLS)}")
    return names


# The names people reach for first: the tools' own function names, and what the groups hold.
_TOOL_ALIASES = {
    "web_search": "search",
    "fetch_url": "fetch",
    "run_python": "python",
    "sandbox": "python",
    "workspace": "files",
    "read_file": "files",
    "write_file": "files",
}


def _tool_guess(name: str) -> str:
    """``serch`` → ``serch (did you mean search?)``."""
    close = _TOOL_ALIASES.get(name) or next(iter(difflib.get_close_matches(name, KNOWN_TOOLS, n=1, cutoff=0.6)), None)
    return f"{name} (did you mean {close}?)" if close else name


def with_model(url: str, model: str) -> str:
    """Replace the model part of a backend URL (``ollama://host:port/MODEL``, ``transformers:MODEL``)."""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        host = rest.split("/", 1)[0]
        return f"{scheme}://{host}/{model}"
    if ":" in url:
        scheme = url.split(":", 1)[0]
        if scheme == "scripted":
            raise UserError("--model cannot be combined with a scripted: backend (its outputs are fixed)")
        return f"{scheme}:{model}"
    raise UserError(
        f"cannot set the model on backend {url!r}; give a full URL such as ollama://localhost:11434/{model}"
    )


def _bool_env(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise UserError(f"environment variable {name}={raw!r} must be 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True, kw_only=True)
class Settings(AgentConfig):
    """Everything a command needs to build an agent, already resolved, and where it came from.

    The agent's own settings (system prompt, thinking, step limit, sampling) are in ``options``; ``sources``
    names the flag, variable or file each of backend and workspace came from.
    """

    config_path: Path | None = None
    named_backends: Mapping[str, str] = field(default_factory=dict)
    allow_download: bool = False  # the automatic in-process default may download its model without asking
    # Every URL when several replicas of one model were given (--backend repeated, or a list in the config);
    # backend_url is then the first of them. Empty for one backend.
    backend_replicas: tuple[str, ...] = ()

    @property
    def backend_source(self) -> str:
        return self.sources.get("backend", "none")

    @property
    def workspace_source(self) -> str:
        return self.sources.get("workspace", "none")


def resolve_settings(
    *,
    backend: str | Sequence[str] | None = None,
    model: str | None = None,
    thinking: bool | None = None,
    tools: str | None = None,
    workspace: str | None = None,
    system: str | None = None,
    max_steps: int | None = None,
    config: str | None = None,
    environ: Mapping[str, str] | None = None,
    mcp: Sequence[str] = (),
    sampling: Mapping[str, Any] | None = None,
    num_ctx: int | None = None,
    allow_download: bool = False,
) -> Settings:
    """Merge flags (arguments here; None = not given), environment variables and the config file."""
    env = os.environ if environ is None else environ
    path = Path(config).expanduser() if config else default_config_path()
    data = load_config_file(path, required=config is not None)
    named: dict[str, str] = dict(data.get("backends", {}))

    urls: list[str] = []
    source = "none"
    for candidates, where in (
        (backend, "--backend"),
        (env.get("AGENTKIT_BACKEND") or None, "AGENTKIT_BACKEND"),
        (data.get("backend"), f"config {path}"),
    ):
        if not candidates:
            continue
        for candidate in [candidates] if isinstance(candidates, str) else candidates:
            if ":" not in candidate and candidate not in named:
                # Not a URL, so meant as a name from [backends]: say which names exist instead of "bad URL".
                names = f"its names: {', '.join(named)}" if named else "it has no [backends] table"
                raise UserError(
                    f"{where}: {candidate!r} is not a backend URL nor a name from [backends] in {path} ({names}); "
                    "a URL looks like ollama://localhost:11434/gemma4:e4b"
                )
            urls.append(named.get(candidate, candidate))
        source = where
        break
    chosen_model = model or env.get("AGENTKIT_MODEL") or data.get("model")
    if urls and chosen_model:
        urls = [with_model(u, chosen_model) for u in urls]
    urls = list(dict.fromkeys(urls))
    url = urls[0] if urls else None

    env_thinking = _bool_env(env, "AGENTKIT_THINKING")
    resolved_thinking = next((v for v in (thinking, env_thinking, data.get("thinking")) if v is not None), False)
    raw_tools, tools_source = next(
        (
            (value, where)
            for value, where in (
                (tools, "--tools"),
                (env.get("AGENTKIT_TOOLS"), "AGENTKIT_TOOLS"),
                (data.get("tools"), f"tools in {path}"),
            )
            if value is not None
        ),
        ((), "none"),
    )
    ws, ws_source = next(
        (
            (value, where)
            for value, where in (
                (workspace, "--workspace"),
                (env.get("AGENTKIT_WORKSPACE"), "AGENTKIT_WORKSPACE"),
                (data.get("workspace"), f"workspace in {path}"),
            )
            if value
        ),
        (None, "none"),
    )
    # Flags over the file, value by value: `-t 0` with `top_p = 0.9` in the file keeps both.
    given = {k: data[k] for k in _SAMPLING_KEYS if k in data}
    given.update({k: v for k, v in (sampling or {}).items() if v is not None})
    sampling_params = None
    if given:
        from agentkit.backends.base import SamplingParams

        # A bad value fails here, before a model is loaded, with the rule it broke; the rest keep Gemma 4's defaults.
        sampling_params = SamplingParams(**given)
    if num_ctx is None and "num_ctx" in data:
        num_ctx, where = data["num_ctx"], f"num_ctx = {data['num_ctx']} in {path}"
    else:
        where = f"--num-ctx {num_ctx}"
    if num_ctx is not None and num_ctx < 256:
        raise UserError(f"{where} is too small: give the context size in tokens, e.g. --num-ctx 8192")
    return Settings(
        backend_url=url,
        tools=parse_tools(raw_tools, where=tools_source),
        workspace=Path(ws).expanduser() if ws else None,
        sources={"backend": source, "workspace": ws_source},
        options=AgentOptions(
            system=system if system is not None else data.get("system"),
            thinking=bool(resolved_thinking),
            max_steps=max_steps if max_steps is not None else int(data.get("max_steps", 20)),
            sampling=sampling_params,
        ),
        config_path=path,
        named_backends=named,
        # The config's servers, then each --mcp: flags add to the file rather than replace it.
        mcp_servers=(*data.get("mcp", ()), *(MCPServerSpec.from_flag(v) for v in mcp)),
        num_ctx=num_ctx,
        allow_download=allow_download,
        backend_replicas=tuple(urls) if len(urls) > 1 else (),
    )


def _ollama_host(environ: Mapping[str, str]) -> str:
    host = environ.get("OLLAMA_HOST", "localhost:11434").strip() or "localhost:11434"
    host = host.removeprefix("http://").removeprefix("https://").rstrip("/")
    if host.startswith("0.0.0.0"):  # a server address, not one to connect to
        host = "localhost" + host[len("0.0.0.0") :]
    return host if ":" in host else f"{host}:11434"


def _ollama_pick_model(host: str, timeout_s: float) -> str | None:
    """The Gemma 4 model to use on a running Ollama, or None when Ollama does not answer."""
    import httpx  # here, not at the top: `agentkit --help` must not pay for it

    try:
        response = httpx.get(f"http://{host}/api/tags", timeout=timeout_s)
        response.raise_for_status()
        names = [m.get("name", "") for m in response.json().get("models", [])]
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    gemma = [n for n in names if n.startswith("gemma4")]
    for preferred in (DEFAULT_OLLAMA_MODEL, "gemma4:latest", "gemma4:e2b"):
        if preferred in gemma:
            return preferred
    return gemma[0] if gemma else DEFAULT_OLLAMA_MODEL


def transformers_installed() -> bool:
    """Whether the ``[transformers]`` extra is there (found without importing torch, which takes seconds)."""
    return importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("torch") is not None


def hf_model_available(model: str) -> bool:
    """Whether loading ``model`` needs no download: a local folder, or a hub id already in the Hugging Face cache."""
    if Path(model).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def no_backend_help(host: str = "localhost:11434", *, with_install: bool = True) -> str:
    """The ways to get a backend, as commands that work from an agentkit checkout (and one that needs nothing).

    ``with_install=False`` leaves out installing the transformers extra, for when it is already there.
    """
    lines = [
        "  - try it offline first: agentkit demo (a scripted stand-in for the model; tools, approval and "
        "streaming are real)",
        f"  - start Ollama (https://ollama.com): `ollama serve`, then `ollama pull {DEFAULT_OLLAMA_MODEL}` "
        f"(agentkit looks for it at {host}; set OLLAMA_HOST to look elsewhere)",
    ]
    if with_install:
        lines.append(
            "  - run Gemma 4 in this process: in the agentkit checkout, `pip install -e '.[transformers]'` "
            "(on a machine without a GPU install CPU torch first: "
            "`pip install torch --index-url https://download.pytorch.org/whl/cpu`), then "
            f'`agentkit run --backend transformers:{DEFAULT_TRANSFORMERS_MODEL} "..."` '
            f"(downloads {DEFAULT_TRANSFORMERS_SIZE} once)"
        )
    lines.append(
        "  - point at a server: --backend vllm://HOST:8000/google/gemma-4-31B-it "
        "(or set AGENTKIT_BACKEND, or `backend = ...` in the config file)"
    )
    return "\n".join(lines)


def ollama_host(environ: Mapping[str, str] | None = None) -> str:
    """Where agentkit looks for Ollama (``OLLAMA_HOST``, as the ollama command reads it)."""
    return _ollama_host(os.environ if environ is None else environ)


def default_backend_url(environ: Mapping[str, str] | None = None, *, timeout_s: float = 1.0) -> str:
    """Pick a backend when none is configured: a local Ollama, else in-process transformers, else explain.

    Picking the in-process model does not download it: the commands ask first (``confirm_download`` in
    ``common``), since a first run fetches gigabytes. Raises ``BackendUnavailable`` (exit code 3) with the
    exact steps to get a backend working.
    """
    env = os.environ if environ is None else environ
    host = _ollama_host(env)
    model = _ollama_pick_model(host, timeout_s)
    if model is not None:
        return f"ollama://{host}/{model}"
    if transformers_installed():
        return f"transformers:{DEFAULT_TRANSFORMERS_MODEL}"
    raise BackendUnavailable(
        f"no backend configured and none found (no Ollama answers at {host}). Do one of:\n" + no_backend_help(host),
        backend="auto",
    )
