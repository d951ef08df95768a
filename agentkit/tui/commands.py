"""Slash commands: what the prompt accepts besides messages, and the completions it offers while typing.

The table here is the single source of ``/help``, the completion menu and the parser, so a command cannot
be listed without being understood or the other way round. Running them is the app's job.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMMANDS", "SlashCommand", "as_message", "completions", "help_text", "parse"]


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str  # without the slash
    summary: str
    argument: str = ""  # how the argument reads in help ("[NAME]"); empty when there is none


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand("help", "list the commands and keys"),
    SlashCommand("model", "list the server's models, or switch to NAME", "[NAME]"),
    SlashCommand("system", "show the system prompt, or set it to TEXT for this chat", "[TEXT]"),
    SlashCommand("tools", "list the tools the model may call"),
    SlashCommand("think", "turn thinking on or off (no argument: toggle)", "[on|off]"),
    SlashCommand("clear", "start a new chat (the current one stays saved)"),
    SlashCommand("retry", "ask the last message again, replacing its answer"),
    SlashCommand("export", "write this chat to a Markdown file", "[FILE]"),
    SlashCommand("copy", "copy the last answer to the clipboard"),
)
_BY_NAME = {c.name: c for c in COMMANDS}


def parse(text: str) -> tuple[SlashCommand, str] | str | None:
    """``(command, argument)`` for a slash command, an error message for an unknown one, None for a message.

    A first word with another slash in it is a path (``/etc/hosts is empty?``), so it is a message; and
    ``//text`` sends ``/text`` (see :func:`as_message`).
    """
    stripped = text.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    rest = stripped[1:]
    name = rest.split(maxsplit=1)[0] if rest and not rest[0].isspace() else ""
    if "/" in name:
        return None
    command = _BY_NAME.get(name.lower())
    if command is None:
        near = completions("/" + name[:1]) if name else []
        hint = f"; did you mean {', '.join('/' + c.name for c in near)}?" if near else ""
        return f"unknown command /{name}{hint} (/help lists them; start with // to send a message beginning with /)"
    return command, rest[len(name) :].strip()


def as_message(text: str) -> str:
    """The message to send for prompt text that :func:`parse` did not take as a command.

    Blank lines around it and trailing spaces go; the first line's indentation stays (pasted code).
    """
    body = text.strip("\r\n").rstrip()
    head = body.lstrip()
    if head.startswith("//"):
        cut = len(body) - len(head)
        body = body[:cut] + body[cut + 1 :]
    return body


def completions(text: str) -> list[SlashCommand]:
    """The commands ``text`` may be the start of: only while the first word is being typed."""
    if not text.startswith("/") or text.startswith("//") or any(c.isspace() for c in text):
        return []
    prefix = text[1:].lower()
    return [c for c in COMMANDS if c.name.startswith(prefix)]


def help_text(keys: list[tuple[str, str]]) -> str:
    """The ``/help`` page: every command, then the keys (passed in: the app owns its bindings)."""
    width = max(len(c.name) + len(c.argument) + 2 for c in COMMANDS)
    lines = ["Commands:"]
    for c in COMMANDS:
        usage = f"/{c.name} {c.argument}".rstrip()
        lines.append(f"  {usage:<{width}}  {c.summary}")
    lines += ["", "Keys:"]
    key_width = max(len(k) for k, _ in keys)
    lines += [f"  {k:<{key_width}}  {what}" for k, what in keys]
    return "\n".join(lines)
