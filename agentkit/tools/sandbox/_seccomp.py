"""A small seccomp filter for the sandbox, handed to bubblewrap with ``--seccomp FD``.

Namespaces hide the host's files, processes and network, but a few kernel facilities are keyed by user id
and not by namespace, or are large attack surfaces that sandboxed scripts never need. Those calls fail with
EPERM inside the sandbox:

- ``keyctl``, ``add_key``, ``request_key``: kernel keyrings are per user; when agentkit runs as root the
  sandbox user *is* root to the kernel and would share root's user keyring;
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``: frequent sources of kernel exploits;
- ``ptrace``, ``process_vm_readv``/``writev``, ``pidfd_getfd``: reading, stopping or steering the run's other
  processes (PID 1 among them) — nothing a script needs, and a classic first step of an escape;
- any syscall through another ABI (32-bit ``int 0x80`` on x86-64, x32), which would slip past the numbers;
- setting the setuid or setgid bit (``chmod``, ``open``/``mkdir``/``mknod`` modes): as root, a file the
  sandbox creates in the workspace belongs to root on the host, and a setuid-root program left there would
  be a way up for every other user of the machine. ``openat2`` (whose mode the filter cannot see) gets
  ENOSYS, so C libraries fall back to ``openat``.

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
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_EPERM = 0x00050000 | 1
_ENOSYS = 0x00050000 | 38
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data
_SETID_BITS = 0o6000  # S_ISUID | S_ISGID


def _arg_low(i: int) -> int:
    return 16 + 8 * i  # low 32 bits of args[i] (little-endian on both covered architectures)


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
    # Reading or steering another process of the run (its PID 1 included): no sandboxed script needs it.
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "pidfd_getfd": (438, 438),
}
# name: (x86_64 (number, mode argument), aarch64 (number, mode argument)); None where the call does not exist
_MODE_CALLS: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {
    "open": ((2, 2), None),
    "creat": ((85, 1), None),
    "openat": ((257, 3), (56, 3)),
    "chmod": ((90, 1), None),
    "fchmod": ((91, 1), (52, 1)),
    "fchmodat": ((268, 2), (53, 2)),
    "fchmodat2": ((452, 2), (452, 2)),
    "mkdir": ((83, 1), None),
    "mkdirat": ((258, 2), (34, 2)),
    "mknod": ((133, 1), None),
    "mknodat": ((259, 2), (33, 2)),
}
_OPENAT2 = 437  # same number on both
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
    prog += [_insn(_JEQ_K, _OPENAT2, 0, 1), _insn(_RET_K, _ENOSYS)]
    for entry in _MODE_CALLS.values():
        if (call := entry[column]) is None:
            continue
        nr, arg = call
        prog += [
            _insn(_JEQ_K, nr, 0, 4),  # another call: skip this rule (A still holds the number)
            _insn(_LD_W_ABS, _arg_low(arg)),
            _insn(_JSET_K, _SETID_BITS, 0, 1),
            _insn(_RET_K, _EPERM),  # the mode asks for setuid/setgid
            _insn(_LD_W_ABS, _NR),  # restore the number for the rules below
        ]
    prog.append(_insn(_RET_K, _ALLOW))
    return b"".join(prog)
