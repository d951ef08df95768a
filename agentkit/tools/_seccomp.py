"""A small seccomp filter for the sandbox, handed to bubblewrap with ``--seccomp FD``.

Namespaces hide the host's files, processes and network, but a few kernel facilities are keyed by user id
and not by namespace, or are large attack surfaces that sandboxed scripts never need. Those calls fail with
EPERM inside the sandbox:

- ``keyctl``, ``add_key``, ``request_key``: kernel keyrings are per user; when agentkit runs as root the
  sandbox user *is* root to the kernel and would share root's user keyring;
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``: frequent sources of kernel exploits;
- any syscall through another ABI (32-bit ``int 0x80`` on x86-64, x32), which would slip past the numbers.

The filter is classic BPF written out by hand (no libseccomp binding needed). Only x86-64 and aarch64 are
covered; elsewhere :func:`filter_program` returns None and the sandbox runs without the filter.
"""

from __future__ import annotations

import platform
import struct

__all__ = ["filter_program"]

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_EPERM = 0x00050000 | 1
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data

# name: (x86_64 number, aarch64 number)
_BLOCKED = {
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
}
_ARCHES = {"x86_64": (0xC000003E, 0), "amd64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1), "arm64": (0xC00000B7, 1)}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine's architecture, or None where it has no syscall table here."""
    arch = _ARCHES.get((machine or platform.machine()).lower())
    if arch is None:
        return None
    audit_arch, column = arch
    prog = [
        _insn(_LD_W_ABS, _ARCH),
        _insn(_JEQ_K, audit_arch, 1, 0),  # native ABI: go on checking numbers
        _insn(_RET_K, _EPERM),  # any other ABI: refuse
        _insn(_LD_W_ABS, _NR),
    ]
    if column == 0:
        prog += [_insn(_JGE_K, 0x40000000, 0, 1), _insn(_RET_K, _EPERM)]  # the x32 ABI
    for numbers in _BLOCKED.values():
        prog += [_insn(_JEQ_K, numbers[column], 0, 1), _insn(_RET_K, _EPERM)]
    prog.append(_insn(_RET_K, _ALLOW))
    return b"".join(prog)
