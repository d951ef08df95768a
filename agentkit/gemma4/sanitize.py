"""Neutralize control-token strings in untrusted text (first version; the protocol work refines it)."""

from __future__ import annotations

# A zero-width joiner between "<" and "|" (and "|" and ">") keeps the text visibly identical while no
# tokenizer can match it as a control token.
_ZWJ = "\u200d"


def sanitize(text: str) -> str:
    """Return ``text`` with every control-token look-alike broken so it cannot become a token."""
    if "<" not in text and ">" not in text:
        return text
    out = text.replace("<|", "<" + _ZWJ + "|").replace("|>", "|" + _ZWJ + ">")
    for word in ("bos", "eos", "pad", "unk", "mask"):
        out = out.replace(f"<{word}>", f"<{_ZWJ}{word}>")
    return out
