"""backend_from_url: one string picks the engine; bad strings say what a good one looks like."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit import backend_from_url, register_backend
from agentkit.backends import backend_schemes, split_server_url
from agentkit.errors import BackendError, BackendUnavailable, UserError
from agentkit.testing import ScriptedBackend


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("gemma4", "expected SCHEME"),
        ("ollama://", "no host"),
        ("ollama://localhost:11434/", "no model"),
        ("ollama://localhost:notaport/gemma4", "invalid backend"),
        ("llamacpp://x/y", "unknown backend scheme 'llamacpp'"),
        ("http://localhost:8000/v1", "vllm://HOST:PORT/MODEL"),
        ("gemma4:e4b", "use ollama:gemma4:e4b"),
    ],
)
def test_bad_urls_are_user_errors_with_examples(url: str, why: str) -> None:
    with pytest.raises(UserError, match="Examples: ollama://") as info:
        backend_from_url(url)
    assert why in str(info.value)


def test_a_url_that_is_not_a_string_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"needs a URL string.*got NoneType"):
        backend_from_url(None)  # type: ignore[arg-type]


def test_scripted_backend_from_file(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(["Hello!<turn|>"]))
    backend = backend_from_url(f"scripted:{path}")
    assert isinstance(backend, ScriptedBackend)
    path.write_text('{"not": "a list"}')
    with pytest.raises(UserError, match="JSON list of strings"):
        backend_from_url(f"scripted:{path}")


def test_scripted_backend_rejects_a_lone_string_or_non_string_outputs() -> None:
    with pytest.raises(UserError, match="takes a list of raw outputs"):
        ScriptedBackend("Hello!<turn|>")
    with pytest.raises(UserError, match="output 1 is of type int"):
        ScriptedBackend(["Hello!<turn|>", 42])  # type: ignore[list-item]
    assert ScriptedBackend(["Hi<turn|>", lambda request: "Bye<turn|>"]).model == "scripted-gemma4"


def test_engine_urls_resolve_host_and_model() -> None:
    ollama = pytest.importorskip("agentkit.backends.ollama")
    b = backend_from_url("ollama://example.org:1234/gemma4:e4b")
    assert isinstance(b, ollama.OllamaBackend)
    assert b.model == "gemma4:e4b"
    assert backend_from_url("ollama:gemma4").model == "gemma4"


def test_vllm_url_keeps_slashes_in_model_name() -> None:
    vllm = pytest.importorskip("agentkit.backends.vllm")
    b = backend_from_url("vllm://gpu-box:8000/google/gemma-4-31B-it")
    assert isinstance(b, vllm.VLLMBackend)
    assert b.model == "google/gemma-4-31B-it"


def test_vllm_url_can_name_a_local_model_path() -> None:
    pytest.importorskip("agentkit.backends.vllm")
    assert backend_from_url("vllm://127.0.0.1:8011//srv/models/tiny").model == "/srv/models/tiny"


# -- the open registry: register_backend and the agentkit.backends entry-point group ------------------------------

ECHO_PROJECT = Path(__file__).resolve().parent / "backends" / "echo_plugin"


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Registrations and loaded plugins made by a test are forgotten after it."""
    from agentkit.backends import registry

    saved = dict(registry._FACTORIES)
    yield
    registry._FACTORIES.clear()
    registry._FACTORIES.update(saved)


@pytest.fixture(scope="module")
def echo_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The third-party package in tests/backends/echo_plugin, installed with pip into a folder of its own."""
    work = tmp_path_factory.mktemp("echo")
    source = work / "src"
    shutil.copytree(ECHO_PROJECT, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    target = work / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"),
            *("--disable-pip-version-check", "--target", str(target), str(source)),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "agentkit_echo_engine-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


def _agentkit(args: list[str], plugin_dir: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[1]
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AGENTKIT_")},
        "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(root)]),
        "AGENTKIT_HOME": str(tmp_path / "home"),
        "AGENTKIT_CONFIG": str(tmp_path / "config.toml"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", *args], env=environ, capture_output=True, text=True, timeout=120
    )


def test_an_installed_plugin_is_picked_by_run_backend(echo_plugin: Path, tmp_path: Path) -> None:
    done = _agentkit(["run", "--backend", "echo://box:1234/tiny", "--no-save", "hello plugin"], echo_plugin, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo from http://box:1234 (tiny): hello plugin\n"


def test_an_installed_plugin_is_picked_by_the_environment_and_the_config_file(
    echo_plugin: Path, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text('backend = "box"\n[backends]\nbox = "echo://cfg-host/cfg-model"\n')
    by_config = _agentkit(["run", "--json", "--no-save", "hi"], echo_plugin, tmp_path)
    assert by_config.returncode == 0, by_config.stderr
    assert json.loads(by_config.stdout.splitlines()[-1])["output"] == "echo from http://cfg-host:9999 (cfg-model): hi"
    by_env = _agentkit(
        ["run", "--no-save", "--model", "other", "yo"], echo_plugin, tmp_path, AGENTKIT_BACKEND="echo://e:1/m"
    )
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stdout == "echo from http://e:1 (other): yo\n"  # --model replaced the plugin URL's model


def test_without_the_plugin_the_scheme_is_unknown_with_the_known_ones_listed(tmp_path: Path) -> None:
    done = _agentkit(["run", "--backend", "echo://box/tiny", "--no-save", "hi"], tmp_path / "nothing", tmp_path)
    assert done.returncode == 2
    assert "unknown backend scheme 'echo'" in done.stderr and "ollama, scripted, transformers, vllm" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_tui_backend_picker_switches_to_a_plugin_engine(
    echo_plugin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: None
) -> None:
    from textual.widgets import Input

    from agentkit import SessionStore
    from agentkit.tui import AgentkitApp
    from agentkit.tui.widgets import PromptScreen

    monkeypatch.syspath_prepend(str(echo_plugin))
    app = AgentkitApp(ScriptedBackend([]), store=SessionStore(tmp_path / "sessions"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+l")
        for _ in range(200):
            if isinstance(app.screen, PromptScreen):
                break
            await pilot.pause(0.02)
        app.screen.query_one(Input).value = "echo://tui-host:5/tui-model"
        await pilot.press("enter")
        for _ in range(200):
            if app.backend.name == "echo":
                break
            await pilot.pause(0.02)
        assert (app.backend.name, app.backend.model) == ("echo", "tui-model")


def test_register_backend_makes_a_scheme_work_everywhere_backend_from_url_does(clean_registry: None) -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def factory(url: str, **options: object) -> ScriptedBackend:
        seen.append((url, options))
        return ScriptedBackend(["Hi<turn|>"], model=split_server_url(url, default_port=7)[1])

    register_backend("MyEngine", factory)
    backend = backend_from_url("  myengine://h/some/model  ", chunk_size=9)
    assert isinstance(backend, ScriptedBackend) and backend.model == "some/model"
    assert seen == [("myengine://h/some/model", {"chunk_size": 9})]
    assert "myengine" in backend_schemes()
    register_backend("myengine", factory)  # the same factory again is harmless
    with pytest.raises(UserError, match=r"'myengine' is already registered .*replace=True"):
        register_backend("myengine", lambda url: ScriptedBackend([]))
    register_backend("myengine", lambda url: ScriptedBackend([], model="replaced"), replace=True)
    assert backend_from_url("myengine:x").model == "replaced"


def test_a_registered_scheme_wins_over_a_built_in_only_when_asked(clean_registry: None) -> None:
    with pytest.raises(UserError, match="already registered"):
        register_backend("ollama", lambda url: ScriptedBackend([]))
    register_backend("ollama", lambda url: ScriptedBackend([], model="mine"), replace=True)
    assert backend_from_url("ollama://h/gemma4").model == "mine"


@pytest.mark.parametrize("scheme", ["", "1abc", "my engine", "a:b", "é", None])
def test_register_backend_rejects_what_cannot_be_a_url_scheme(scheme: object, clean_registry: None) -> None:
    with pytest.raises(UserError, match="needs a URL scheme"):
        register_backend(scheme, lambda url: ScriptedBackend([]))  # type: ignore[arg-type]


def test_register_backend_needs_a_callable_and_the_factory_must_return_a_backend(clean_registry: None) -> None:
    with pytest.raises(UserError, match=r"needs a factory called as factory\(url, \*\*options\), got str"):
        register_backend("x", "not callable")  # type: ignore[arg-type]
    register_backend("x", lambda url: object())  # type: ignore[arg-type,return-value]
    with pytest.raises(BackendError, match="returned a object, which is not a Backend"):
        backend_from_url("x:y")


def _dist_info(site: Path, package: str, entry: str, module_source: str | None = None) -> None:
    """A distribution as pip leaves it (dist-info with METADATA and entry_points.txt), for in-process checks."""
    info = site / f"{package.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[agentkit.backends]\n{entry}\n")
    if module_source is not None:
        module = entry.split("=", 1)[1].strip().split(":")[0]
        (site / f"{module}.py").write_text(module_source)


def test_a_plugin_that_fails_to_import_is_a_clear_backend_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: None
) -> None:
    _dist_info(tmp_path, "broken-engine", "broken = broken_engine_mod:make", "import not_installed_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendUnavailable) as info:
        backend_from_url("broken://h/m")
    message = str(info.value)
    assert "broken_engine_mod:make, from broken-engine" in message and "not_installed_dependency" in message
    assert "Reinstall or upgrade broken-engine" in message


def test_a_plugin_entry_that_is_not_callable_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: None
) -> None:
    _dist_info(tmp_path, "odd-engine", "odd = odd_engine_mod:VALUE", "VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendError, match="is a int, not a factory"):
        backend_from_url("odd://h/m")


def test_two_packages_claiming_one_scheme_is_an_error_until_one_is_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: None
) -> None:
    _dist_info(tmp_path / "a", "engine-a", "twin = twin_a:make", "")
    _dist_info(tmp_path / "b", "engine-b", "twin = twin_b:make", "")
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    with pytest.raises(UserError, match=r"more than one installed package provides the backend scheme 'twin'") as info:
        backend_from_url("twin://h/m")
    assert "engine-a" in str(info.value) and "engine-b" in str(info.value)
    register_backend("twin", lambda url: ScriptedBackend([], model="chosen"))
    assert backend_from_url("twin://h/m").model == "chosen"
    assert "twin" in backend_schemes()


_HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)
_MODELS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,40}", fullmatch=True)


@given(host=_HOSTS, port=st.one_of(st.none(), st.integers(1, 65535)), model=_MODELS)
def test_split_server_url_reads_back_the_host_port_and_model_it_was_given(
    host: str, port: int | None, model: str
) -> None:
    netloc = host if port is None else f"{host}:{port}"
    assert split_server_url(f"eng://{netloc}/{model}", default_port=4321) == (f"http://{host}:{port or 4321}", model)
    assert split_server_url(f"engs://{netloc}/{model}", default_port=1, https_scheme="engs")[0].startswith("https://")
    assert split_server_url(f"eng:{model}", default_port=4321) == ("http://localhost:4321", model)
