"""An MCP server over stdio that misbehaves on purpose, JSON-RPC written by hand (the SDK's server would not).

Its tools: ``echo`` answers normally; ``flood`` writes ``FLOOD_MB`` MiB on stdout with no newline (one
message without end, as a hostile or broken server could); ``shout`` writes as much on stderr and then
answers; ``storm`` announces ``tools/list_changed`` 2,000 times and then answers. Bytes of the flood it managed
to write go to the file ``HOSTILE_WRITTEN`` names, the number of ``tools/list`` requests to ``HOSTILE_LISTS``.
"""

from __future__ import annotations

import json
import os
import sys

MB = 1 << 20
FLOOD_MB = 64


def send(message: dict[str, object]) -> None:
    sys.stdout.buffer.write(json.dumps(message).encode() + b"\n")
    sys.stdout.buffer.flush()


def text(rid: object, value: str) -> None:
    send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": value}]}})


def flood(stream: object, record: str | None) -> None:
    written = 0
    try:
        for _ in range(FLOOD_MB):
            stream.write(b"A" * MB)  # type: ignore[attr-defined]
            stream.flush()  # type: ignore[attr-defined]
            written += MB
    except OSError:
        pass  # the client hung up (or killed us first)
    finally:
        if record:
            with open(record, "w") as f:
                f.write(str(written))


def main() -> None:
    tools = [{"name": n, "inputSchema": {"type": "object"}} for n in ("echo", "flood", "shout", "storm")]
    lists = 0
    for line in sys.stdin:
        message = json.loads(line)
        rid, method = message.get("id"), message.get("method")
        if rid is None:
            continue
        if method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hostile", "version": "1"},
            }
            send({"jsonrpc": "2.0", "id": rid, "result": result})
        elif method == "tools/list":
            lists += 1
            if os.environ.get("HOSTILE_LISTS"):
                with open(os.environ["HOSTILE_LISTS"], "w") as f:
                    f.write(str(lists))
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": tools}})
        elif method == "tools/call":
            name = message["params"]["name"]
            if name == "flood":
                head = json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": ""}]}})
                sys.stdout.buffer.write(head.split('""', 1)[0].encode() + b'"')
                flood(sys.stdout.buffer, os.environ.get("HOSTILE_WRITTEN"))
                return
            if name == "storm":
                for _ in range(2000):
                    send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            if name == "shout":
                flood(sys.stderr.buffer, None)
                sys.stderr.buffer.write(b"\nlast words of the shouting server\n")
                sys.stderr.buffer.flush()
            text(rid, f"{name}: {json.dumps(message['params'].get('arguments') or {})}")
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method"}})


if __name__ == "__main__":
    main()
