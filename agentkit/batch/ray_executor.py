"""The Ray executor: batch tasks run in worker actors across a Ray cluster; results come back to the driver.

Each worker is an async Ray actor (one CPU by default, spread over the nodes) holding the pickled agent factory;
it runs several tasks at once in its own event loop with :func:`~agentkit.batch.task.run_task`, exactly the code
the local executor runs. The driver keeps at most ``concurrency`` tasks in flight, each on the least loaded live
worker, and hands every record to the batch's one writer.

Failures: a worker that dies (its process or its whole node) fails the calls it was running with a Ray system
error; those tasks go back to the queue and start again on another worker, up to ``max_attempts`` times each,
then are recorded as failed. The dead worker gets no new tasks until Ray has restarted it and its preflight
passes there: Ray runs a restarted actor's ``__init__`` again, on whatever node has room, which may lack what
the first node had (``bwrap``, a route to the backend). A worker whose preflight fails there is dropped, with a
warning naming the node; the batch ends with that error only when no worker is left.
A task's own errors (its model, tools, timeout) are results, never retried here. So each task id is written
once; a task whose worker died mid-run has run (in part) more than once, which is what tools with side effects
must allow for (at-least-once execution, exactly-once results).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import stat
import sys
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import agentkit.errors as errors
from agentkit.errors import AgentkitError, UserError, WorkersUnavailable

from .files import BatchTask
from .task import AgentFactory, close_worker_resources, preflight, run_task

__all__ = ["RayExecutor"]

_INSTALL = "the Ray executor needs Ray: pip install -e '.[ray]' in the agentkit checkout"
_UNREADY = "_worker_unready"  # the key of a worker's answer "my preflight failed, this task did not start"
log = logging.getLogger("agentkit.batch")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UserError(_INSTALL) from exc
    return ray


class _BatchWorker:
    """One Ray actor: builds agents with the factory it was given and runs tasks with ``run_task``."""

    def __init__(self, factory: bytes, timeout_s: float) -> None:
        # The factory comes pickled, as bytes kept with the actor's creation, so a worker Ray restarts on another
        # node gets it again (an object-store reference could be gone by then).
        self._make_agent: AgentFactory = _import_ray().cloudpickle.loads(factory)
        self._timeout_s = timeout_s
        self._checked: asyncio.Future[dict[str, str] | None] | None = None

    async def preflight(self) -> dict[str, str] | None:
        """The problem every task would meet in this process (None: none), checked once per process.

        A worker Ray restarts is a new process, so it checks again, whoever asks first: the driver once it
        answers, or its first task.
        """
        if self._checked is None:
            self._checked = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._checked)  # a cancelled caller must not cancel the others' check

    async def _check(self) -> dict[str, str] | None:
        try:
            await preflight(self._make_agent)
        except Exception as exc:
            node = _import_ray().util.get_node_ip_address()
            return {"type": type(exc).__name__, "message": str(exc), "node": node}
        return None

    async def run(self, task: BatchTask) -> dict[str, Any]:
        problem = await self.preflight()
        if problem is not None:  # not the task's failure: the driver runs it on another worker
            return {"id": task.id, _UNREADY: problem}
        return await run_task(self._make_agent, task, self._timeout_s, return_session=True)

    async def close(self) -> None:
        close = getattr(self._make_agent, "aclose", None)
        if callable(close):
            await close()
        await close_worker_resources()


class RayExecutor:
    """Runs batch tasks on a Ray cluster: the one at ``address`` (``HOST:PORT``, ``ray://HOST:PORT``), else the
    one ``RAY_ADDRESS`` names, else a new private local one (also ``address="local"``).

    A cluster is only ever joined by its address: Ray's discovery (``"auto"``) joins whichever cluster
    ``/tmp/ray/ray_current_cluster`` names, a file any local user can write, so it is refused. A process already
    connected to Ray (``ray.init`` done by the caller) runs on that cluster.

    ``workers``: how many worker actors (default: the cluster's CPUs divided by ``cpus_per_worker``, at most the
    concurrency). ``max_attempts``: how often a task may start because its worker died. ``down_timeout_s``: how
    long the driver waits for a worker to come back once every worker is down before giving up the batch.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        cpus_per_worker: float = 1.0,
        max_attempts: int = 3,
        down_timeout_s: float = 120.0,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise UserError("the Ray executor needs at least one worker")
        _refuse_discovery(address, "the Ray address")
        if cpus_per_worker < 0 or max_attempts < 1 or down_timeout_s <= 0:
            raise UserError("RayExecutor needs cpus_per_worker >= 0, max_attempts >= 1 and down_timeout_s > 0")
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.max_attempts = max_attempts
        self.down_timeout_s = down_timeout_s
        self.init_options = dict(init_options or {})
        self._token: _Token | None = None  # the auth token file of the local cluster this executor started

    # -- the cluster ----------------------------------------------------------------------------------------

    def describe(self) -> str:
        """Which cluster :meth:`run` will use, in words (the CLI says it before starting; a bad RAY_ADDRESS raises
        ``UserError`` here, before any model is loaded)."""
        connected = _connected_cluster()
        if connected is not None:
            return f"the Ray cluster this process is connected to ({connected})"
        address = cluster_address(self.address)
        if address == "local":
            return "a new private local Ray cluster (give --ray HOST:6379 to use an existing one)"
        source = "" if self.address else " (from RAY_ADDRESS)"
        return f"the Ray cluster at {address}{source}"

    def _connect(self, ray: Any) -> bool:
        """Join the cluster (True when this call connected, so it disconnects at the end)."""
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if self.address and self.address != current:
                raise UserError(
                    f"this process is already connected to the Ray cluster at {current}, not {self.address}; "
                    "give that address, or none"
                )
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        options.update(self.init_options)
        address = cluster_address(self.address)
        loose = _loose_default_token()
        if loose and address == "local" and "_temp_dir" not in options:
            log.warning("agentkit: %s (this batch's cluster does not use it: it gets a private token)", loose)
        elif loose:
            raise UserError(f"{loose}; agentkit does not send it to the cluster at {address} until it is private")
        if address == "local" and "_temp_dir" not in options:
            root = _private_root()
            options["_temp_dir"] = str(root / "ray")
            self._token = _private_auth_token(root)
        try:
            _reachable(address)
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
            self._drop_token()
            if address == "local":
                raise WorkersUnavailable(f"cannot start a local Ray cluster: {exc}") from exc
            raise WorkersUnavailable(
                f"cannot connect to the Ray cluster at {address}: {exc}. Start one with `ray start --head` and give "
                "its address (--ray HOST:6379), or give --ray without an address to start a local one"
            ) from exc
        return True

    def _workers(self, ray: Any, concurrency: int, tasks: int) -> tuple[int, float]:
        """How many workers, and the CPUs each asks for (less than ``cpus_per_worker`` when ``workers`` is more
        than the cluster fits, so that all of them start)."""
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if self.workers is not None:
            count = max(1, min(self.workers, concurrency, tasks))
            return count, min(self.cpus_per_worker, cpus / count)
        fit = int(cpus // self.cpus_per_worker) if self.cpus_per_worker > 0 else concurrency
        if fit < 1:
            raise WorkersUnavailable(
                f"the Ray cluster has {cpus:g} CPUs, too few for one worker of {self.cpus_per_worker:g} CPU; "
                "add worker nodes (ray start --address HEAD:6379) or lower cpus_per_worker"
            )
        return max(1, min(fit, concurrency, tasks)), self.cpus_per_worker

    # -- running -------------------------------------------------------------------------------------------

    async def run(
        self, tasks: Sequence[BatchTask], make_agent: AgentFactory, *, concurrency: int, timeout_s: float
    ) -> AsyncIterator[dict[str, Any]]:
        ray = _import_ray()
        connected = self._connect(ray)
        actors: list[Any] = []
        try:
            count, cpus = self._workers(ray, concurrency, len(tasks))
            slots = math.ceil(concurrency / count)
            try:
                factory = ray.cloudpickle.dumps(make_agent)
            except Exception as exc:  # what pickling raises varies (TypeError, PicklingError, ...)
                raise UserError(
                    f"the agent factory cannot be sent to Ray workers ({type(exc).__name__}: {exc}); build live "
                    "objects such as the backend inside it, e.g. with agentkit.batch.once_per_worker"
                ) from exc
            worker_class = ray.remote(_BatchWorker).options(
                num_cpus=cpus,
                max_restarts=-1,  # a worker on a lost node comes back elsewhere; tasks are retried by the driver
                max_task_retries=0,
                max_concurrency=slots + 2,  # its tasks, plus preflight and close
                scheduling_strategy="SPREAD",
            )
            actors = [worker_class.remote(factory, timeout_s) for _ in range(count)]
            await self._preflight(ray, actors)
            async for record in self._dispatch(ray, actors, tasks, slots, concurrency):
                yield record
        finally:
            await self._stop(ray, actors)
            if connected:
                ray.shutdown()
                self._drop_token()

    def _drop_token(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            token.remove()

    async def _preflight(self, ray: Any, actors: list[Any]) -> None:
        """Every worker checks its tools and backend once; the first problem ends the batch, naming the node."""
        checks = asyncio.gather(*(asyncio.wrap_future(a.preflight.remote().future()) for a in actors))
        try:
            results = await asyncio.wait_for(checks, self.down_timeout_s)
        except TimeoutError:
            raise WorkersUnavailable(
                f"{len(actors)} Ray workers did not start within {self.down_timeout_s:g}s (the cluster has "
                f"{ray.cluster_resources().get('CPU', 0):g} CPUs); give fewer --ray-workers or add nodes"
            ) from None
        except ray.exceptions.RayError as exc:
            raise WorkersUnavailable(f"a Ray worker failed while starting: {exc}") from exc
        problems = [p for p in results if p is not None]
        if problems:
            raise _unready_error(problems)

    async def _dispatch(
        self, ray: Any, actors: list[Any], tasks: Sequence[BatchTask], slots: int, concurrency: int
    ) -> AsyncIterator[dict[str, Any]]:
        pending: deque[tuple[BatchTask, int]] = deque((t, 1) for t in tasks)
        inflight: dict[asyncio.Future[Any], tuple[BatchTask, int, int]] = {}
        load = [0] * len(actors)
        down: dict[int, asyncio.Task[dict[str, str] | None]] = {}  # worker index -> its preflight once back
        unready: dict[int, dict[str, str]] = {}  # workers whose preflight failed after a restart: no more tasks

        def drop(index: int, problem: dict[str, str]) -> None:
            if index in unready:
                return
            unready[index] = problem
            left = len(actors) - len(unready)
            log.warning(
                "agentkit: a Ray worker restarted on %s cannot run tasks (%s); it gets no more, %d worker(s) left",
                problem["node"],
                problem["message"],
                left,
            )
            if not left:
                raise _unready_error(list(unready.values()))

        try:
            while pending or inflight:
                while pending and len(inflight) < concurrency:
                    free = [i for i in range(len(actors)) if i not in down and i not in unready and load[i] < slots]
                    if not free:
                        break
                    index = min(free, key=load.__getitem__)
                    task, attempt = pending.popleft()
                    future = asyncio.wrap_future(actors[index].run.remote(task).future())
                    inflight[future] = (task, attempt, index)
                    load[index] += 1
                waiting: set[asyncio.Future[Any]] = {*inflight, *down.values()}
                timeout = self.down_timeout_s if not inflight else None
                finished, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not finished:
                    raise WorkersUnavailable(
                        f"all {len(actors)} Ray workers have been down for {self.down_timeout_s:g}s with "
                        f"{len(pending)} task(s) left; the results so far are kept: rerun the same command to "
                        "resume once the cluster has capacity again"
                    )
                for index, waiter in list(down.items()):
                    if waiter in finished:
                        del down[index]
                        if (problem := waiter.result()) is not None:
                            drop(index, problem)
                for future in finished:
                    if future not in inflight:
                        continue
                    task, attempt, index = inflight.pop(future)
                    load[index] -= 1
                    try:
                        record: dict[str, Any] = future.result()
                        if _UNREADY in record:  # restarted where it cannot run tasks; this one never started
                            pending.appendleft((task, attempt))
                            drop(index, record[_UNREADY])
                            continue
                    except ray.exceptions.RayTaskError as exc:  # our code raised in the worker: a bug, recorded
                        record = _failure(task, f"the worker failed: {exc}", "WorkerError")
                    except ray.exceptions.RayError as exc:  # the worker or its node died
                        if index not in down:
                            down[index] = asyncio.create_task(_answers_again(ray, actors[index]))
                        if attempt < self.max_attempts:
                            pending.appendleft((task, attempt + 1))
                            continue
                        record = _failure(
                            task,
                            f"the worker running it died {attempt} times (last: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'no details'}); not tried again",
                            "WorkerDied",
                        )
                    if attempt > 1:
                        record["attempts"] = attempt
                    yield record
        finally:
            for waiter in down.values():
                waiter.cancel()
            for future in inflight:
                future.cancel()

    async def _stop(self, ray: Any, actors: list[Any]) -> None:
        if not actors:
            return
        closes = [asyncio.wrap_future(a.close.remote().future()) for a in actors]
        with contextlib.suppress(TimeoutError):  # a worker that cannot close in time is killed anyway
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), 10)
        for actor in actors:
            ray.kill(actor)


def _connected_cluster() -> str | None:
    """The address of the cluster this process is connected to, if any (Ray is not imported to find out)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().gcs_address)


def cluster_address(address: str | None) -> str:
    """The cluster a batch joins: ``address``, else ``RAY_ADDRESS``'s, else ``"local"`` (a new private one).

    Said before connecting (the CLI prints it), so which cluster receives the agent factory is never a guess.
    """
    if address:
        return address
    from_env = os.environ.get("RAY_ADDRESS", "").strip()
    _refuse_discovery(from_env, "RAY_ADDRESS")
    return from_env or "local"


def _refuse_discovery(address: str | None, what: str) -> None:
    if address is not None and address.strip().lower() == "auto":
        raise UserError(
            f"{what} 'auto' asks Ray to join whichever cluster /tmp/ray/ray_current_cluster names, a file any "
            "local user can write, and that cluster would receive the agent factory; give the cluster's address "
            "(--ray HOST:6379, the address `ray start --head` printed), or --ray alone for a new private local "
            "cluster"
        )


def _private_root() -> Path:
    """Where a local cluster agentkit starts keeps its sockets and files: a folder only this user can enter.

    Ray's default, ``/tmp/ray``, is made world-writable (``chmod 0777``, not sticky) so that any user's
    cluster can share it, and ``ray.init()`` without an address joins the cluster named by
    ``/tmp/ray/ray_current_cluster``: any local user could write that file and have this batch join *their*
    cluster, which receives the pickled agent factory (keys, endpoints) and sends back pickled results that
    this process loads. So the local cluster is always a new one (``address="local"``) under a 0700 folder
    (Ray makes its own temp folder 0777, hence the private parent).
    """
    root = Path(tempfile.gettempdir()) / f"agentkit-ray-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(root)
    except OSError as exc:
        raise UserError(f"cannot make a private folder for a local Ray cluster at {root}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UserError(
            f"{root} is not a private folder of this user (another user may have made it); remove it, or start "
            "a cluster yourself (ray start --head) and give its address with --ray HOST:6379"
        )
    return root


class _Token:
    """The auth token file of one local cluster, and the ``RAY_AUTH_TOKEN_PATH`` it replaced."""

    def __init__(self, path: Path, before: str | None) -> None:
        self.path, self.before = path, before

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        if os.environ.get(_TOKEN_PATH) == str(self.path):
            if self.before is None:
                os.environ.pop(_TOKEN_PATH, None)
            else:
                os.environ[_TOKEN_PATH] = self.before
        _reset_token_cache()


_TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"


def _private_auth_token(root: Path) -> _Token | None:
    """A fresh token for the new local cluster, in a 0600 file under ``root``, named by ``RAY_AUTH_TOKEN_PATH``.

    Ray turns token authentication on for a new local cluster and, finding no token, writes one to
    ``~/.ray/auth_token`` with the umask's mode (0644 in a 0755 folder): any local user could read it and connect
    to the cluster, which runs whatever it is sent as this user and holds the pickled agent factory. Ray looks
    at ``RAY_AUTH_TOKEN`` and ``RAY_AUTH_TOKEN_PATH`` first, so a token of our own, private and named there,
    means Ray writes none. A token or mode the user set (``RAY_AUTH_MODE=disabled``, their own token) is theirs.
    The file is per cluster (two batches of one user may run at once) and removed when the cluster stops.
    """
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get(_TOKEN_PATH):
        return None
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() not in ("", "token"):
        return None
    path = root / f"auth-token-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32))  # 256 bits, as Ray's own generator makes them
    except OSError as exc:
        raise UserError(f"cannot write a private auth token for the local Ray cluster at {path}: {exc}") from exc
    token = _Token(path, os.environ.get(_TOKEN_PATH))
    os.environ[_TOKEN_PATH] = str(path)  # the cluster's processes are started from this one and inherit it
    _reset_token_cache()
    return token


def _loose_default_token() -> str:
    """What is wrong with Ray's default token file, ``~/.ray/auth_token``, when Ray would read it ("" if nothing).

    agentkit before its private tokens let Ray write that file with the umask's 0644, and Ray uses it again for
    every cluster started (``ray start --head``) or joined without a token of its own: anyone on the machine who
    read it can join such a cluster and run code as this user. A token named by ``RAY_AUTH_TOKEN`` or
    ``RAY_AUTH_TOKEN_PATH``, or authentication turned off, means the file is not read.
    """
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get(_TOKEN_PATH):
        return ""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() not in ("", "token"):
        return ""
    path = Path.home() / ".ray" / "auth_token"
    try:
        info = os.stat(path)
    except OSError:
        return ""
    others = info.st_uid != os.getuid()
    if not others and not info.st_mode & 0o077:
        return ""
    mode = stat.S_IMODE(info.st_mode)
    where = "is owned by another user" if others else f"can be read or written by other users (mode {mode:o})"
    return (
        f"Ray's token file {path} {where}: anyone on this machine who read it can join a Ray cluster that uses it "
        f"and run code as you (earlier agentkit versions let Ray write it so). Run `chmod 600 {path}` and, as it "
        "may have been read, restart your clusters with a new token (`ray get-auth-token --generate` after "
        "removing the file), or remove the file if no cluster of yours uses it"
    )


def _reset_token_cache() -> None:
    """Have Ray's token loader (a process-wide cache) read the token sources again."""
    with contextlib.suppress(Exception):  # an older Ray has no token authentication: nothing cached
        import ray._raylet

        ray._raylet.AuthenticationTokenLoader.instance().reset_cache()  # type: ignore[attr-defined]


def _reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Raise ``OSError`` at once when a HOST:PORT address does not accept connections (``ray.init`` would retry
    for minutes before saying so)."""
    host, sep, port = (address or "").rpartition(":")
    if not sep or not port.isdigit() or "://" in host:
        return  # "local", ray://...: Ray starts or reports these itself
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
        pass


async def _answers_again(ray: Any, actor: Any) -> dict[str, str] | None:
    """Wait until a worker answers again (Ray restarts it, elsewhere if its node is gone): its preflight there."""
    while True:
        try:
            problem: dict[str, str] | None = await asyncio.wrap_future(actor.preflight.remote().future())
            return problem
        except ray.exceptions.RayError:
            await asyncio.sleep(0.5)


def _unready_error(problems: Sequence[Mapping[str, str]]) -> AgentkitError:
    """The error of the first problem (its agentkit class where it has one: exit codes follow), naming the nodes."""
    first = problems[0]
    nodes = sorted({p["node"] for p in problems})
    message = f"Ray workers on {', '.join(nodes)} cannot run tasks: {first['message']}"
    error_class = getattr(errors, first["type"], None)
    if isinstance(error_class, type) and issubclass(error_class, AgentkitError):
        try:
            return error_class(message)
        except TypeError:  # a class that needs more than a message
            pass
    return WorkersUnavailable(message)


def _failure(task: BatchTask, message: str, error_type: str) -> dict[str, Any]:
    return {"id": task.id, "task": task.task, "ok": False, "error": message, "error_type": error_type}
