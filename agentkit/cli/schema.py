"""``--schema``: the output type of ``agentkit run``, from a JSON Schema file or a ``module:Class`` path.

A file keeps the command usable without writing Python; ``module:Class`` (the form uvicorn and
pydantic-settings use) reuses a pydantic model, dataclass or TypedDict a project already has, with its
validators. Either way every mistake is a :class:`~agentkit.errors.UserError` that says which of the two
forms was understood and what went wrong, never a traceback.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from agentkit.errors import UserError

__all__ = ["load_output_type", "structured_json"]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def load_output_type(value: str) -> Any:
    """The ``output_type`` for ``Agent`` that ``--schema VALUE`` names (a JSON Schema dict or a Python type)."""
    path = Path(value).expanduser()
    if path.is_file() or value.endswith(".json"):
        return _read_schema_file(path)
    if _IMPORT_PATH.fullmatch(value):
        return _import_type(value)
    raise UserError(
        f"--schema {value!r} is neither a JSON Schema file (no such file) nor a Python path like "
        "'mypackage.models:Invoice'"
    )


def _read_schema_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UserError(f"--schema: no such file: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--schema: cannot read {path}: {exc}") from exc
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"--schema: {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError:  # json's decoder recurses once per nesting level
        raise UserError(f"--schema: {path} is nested too deeply to be a JSON Schema") from None
    if not isinstance(schema, dict):
        raise UserError(f"--schema: {path} must hold a JSON Schema object ({{...}}), not a {type(schema).__name__}")
    return schema


def _import_type(value: str) -> Any:
    module_name, _, attribute = value.partition(":")
    # The current directory, as `python -m` would see it: `--schema models:Invoice` next to models.py works.
    added = "" not in sys.path and str(Path.cwd()) not in sys.path
    if added:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(
            f"--schema {value}: cannot import module {module_name!r} ({exc}); run from the folder that holds it "
            "or install its package"
        ) from exc
    except Exception as exc:  # the module itself failed: say so rather than show its traceback
        raise UserError(f"--schema {value}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(Path.cwd()))
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UserError(f"--schema {value}: module {module_name!r} has no attribute {attribute!r}") from None
    if not (isinstance(target, type) or hasattr(target, "__origin__")):
        raise UserError(
            f"--schema {value}: {attribute} is a {type(target).__name__}, not a type; name a pydantic model, "
            "dataclass or TypedDict"
        )
    return target


def structured_json(output_type: Any, value: Any) -> str:
    """The validated output as the JSON ``run --schema`` prints (pydantic's serialisation for Python types)."""
    from agentkit.output import output_spec

    spec = output_spec(output_type, retries=0)
    text = json.dumps(value, ensure_ascii=False) if spec is None else spec.dump_json(value)
    # Model-written strings must not drive the terminal: characters that could are written as JSON escapes
    # (they only occur inside strings, where \uXXXX means the same thing).
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
