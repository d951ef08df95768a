"""The program that runs first inside the sandbox: PID 1 of the run, and the parent of the user's code.

It starts as a fresh ``exec`` under the seccomp filter (``--as-pid-1``: there is no bubblewrap process
inside), so PID 1 holds nothing but the sandbox's environment and the code: no API keys in
``/proc/1/environ``, no host mount list in ``/proc/1/cmdline``. In order it

1. adds the interpreter's site-packages by hand: Python starts with ``-S``, so the path lines of ``.pth``
   files are honoured but their ``import`` lines are not run (arbitrary code at every start, ~50 ms on a
   loaded machine);
2. reads the code from stdin and writes it to the main file, then points stdin at ``/dev/null``;
3. sets the hard rlimits it was given, so the code cannot raise them again;
4. reports on the ``ready`` pipe that the sandbox is up (silence means it never got this far);
5. forks the program, reaps orphans as a namespace's init must, and exits with the program's status, which
   makes the kernel kill whatever is left in the PID namespace.

Its arguments are the main file's path, the limits as ``RLIMIT_X=n,...`` and the ready pipe's number
(:data:`READY_MARK` in the command line until the pipe exists).
"""

from __future__ import annotations

__all__ = ["BOOTSTRAP", "READY_MARK"]

READY_MARK = "{ready-fd}"

BOOTSTRAP = r"""
import os, sys, resource, signal, site
main, limits, ready = sys.argv[1], sys.argv[2], int(sys.argv[3])
# With -S, site.venv() has not run: find the virtual environment as it does, from pyvenv.cfg next to the
# interpreter, and use its packages (and the base's when it says so), as the same interpreter does outside.
prefixes = [sys.prefix]
exe_dir = os.path.dirname(os.path.abspath(sys.executable))
for cfg in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(os.path.dirname(exe_dir), "pyvenv.cfg")):
    if os.path.isfile(cfg):
        sys.prefix = sys.exec_prefix = prefixes[0] = os.path.dirname(cfg)
        with open(cfg, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip().lower() == "include-system-site-packages" and value.strip().lower() == "true":
                    prefixes.append(sys.base_prefix)
        break
for d in site.getsitepackages(prefixes):
    if os.path.isdir(d):
        sys.path.append(d)
        for pth in sorted(n for n in os.listdir(d) if n.endswith(".pth")):
            with open(os.path.join(d, pth), encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith(("#", "import ", "import\t")):
                        p = os.path.join(d, line)
                        if os.path.isdir(p) and p not in sys.path:
                            sys.path.append(p)
code = sys.stdin.buffer.read()
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
with open(main, "wb") as f:
    f.write(code)
for item in limits.split(","):
    name, value = item.split("=")
    resource.setrlimit(getattr(resource, name), (int(value), int(value)))
os.write(ready, b"1")
os.close(ready)
child = os.fork()
if child:
    # PID 1 of the run: reap orphans until the program ends, then end the run with the program's status (the
    # kernel then kills whatever is left). Signals sent from inside are ignored, as for any namespace's init.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            break
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)
del child
sys.argv = [main]
sys.path.insert(0, os.getcwd())
g = {"__name__": "__main__", "__file__": main, "__builtins__": __builtins__}
try:
    exec(compile(code, main, "exec"), g)
except SystemExit:
    raise
except BaseException as exc:
    import traceback
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != main:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)
    sys.exit(1)
"""
