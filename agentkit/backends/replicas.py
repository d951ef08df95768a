"""ReplicaBackend: one backend made of several servers of the same model, with client-side load balancing.

Scaling a batch past one model server means several replicas (``vllm serve`` on N machines, or N Ollamas). This
backend wraps any backends — it only uses the :class:`~agentkit.backends.base.Backend` interface, so it works for
every engine — and sends each generation to the healthy replica with the fewest requests in flight (least
outstanding requests: a slow or busy replica gets less work without any tuning). Ties go round-robin.

A replica that cannot be reached (``BackendUnavailable``), breaks off a stream (``StreamInterrupted``) or answers
5xx is taken out of rotation. Requests that had not received any text yet move to another replica at once, so a
server dying mid-batch costs no task; a stream that had already sent text cannot be resumed elsewhere (the
prefix would be generated twice), so that one error reaches the caller. A replica taken out is health-checked
(its ``check()``) after ``retry_after_s``, doubling up to ``max_retry_after_s`` while it stays down, and comes
back when a check passes. Only when every replica is down does a request fail, naming each one's last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from agentkit.errors import BackendError, BackendResponseError, BackendUnavailable, StreamInterrupted, UserError

from .base import Backend, BackendEvent, Capabilities, GenerationRequest, ListsModels, RawDelta

__all__ = ["ReplicaBackend", "backend_from_urls"]


@dataclass(eq=False, slots=True)
class _Replica:
    backend: Backend
    label: str
    outstanding: int = 0
    down_until: float | None = None  # None: in rotation; else when it may be health-checked again
    backoff_s: float = 0.0
    last_error: str = ""
    probe: asyncio.Task[None] | None = None
    served: int = 0  # generations started here (what `stats()` reports)
    failures: int = 0


def _takes_replica_out(exc: BackendError) -> bool:
    """Whether an error says the server is unwell (try another) rather than that the request is bad."""
    if isinstance(exc, BackendUnavailable | StreamInterrupted):
        return True
    return isinstance(exc, BackendResponseError) and (exc.status is None or exc.status >= 500)


class ReplicaBackend:
    """Spreads generations over replicas of one model: least outstanding requests, failed replicas taken out.

    ``replicas`` are backends serving the same model with the same capabilities (checked here, so a typo in
    one URL fails at once rather than as odd answers from one server in N). ``labels`` name them in errors
    (default: each backend's ``base_url`` or ``host`` if it has one, else its position).
    """

    def __init__(
        self,
        replicas: Sequence[Backend],
        *,
        labels: Sequence[str] | None = None,
        retry_after_s: float = 5.0,
        max_retry_after_s: float = 60.0,
    ) -> None:
        if not replicas:
            raise UserError("ReplicaBackend needs at least one backend")
        if labels is not None and len(labels) != len(replicas):
            raise UserError(f"ReplicaBackend got {len(replicas)} backends but {len(labels)} labels")
        if retry_after_s <= 0 or max_retry_after_s < retry_after_s:
            raise UserError("ReplicaBackend needs 0 < retry_after_s <= max_retry_after_s")
        models = sorted({b.model for b in replicas})
        if len(models) > 1:
            raise UserError(
                f"the replicas serve different models ({', '.join(repr(m) for m in models)}); every --backend of "
                "one run must serve the same model (give --model to set it on all of them)"
            )
        caps = {b.capabilities for b in replicas}
        if len(caps) > 1:
            raise UserError(
                "the replicas differ in what they can do (engine, mode or tokenizer): "
                + "; ".join(f"{b.name} {b.capabilities}" for b in replicas)
                + ". Give replicas of one engine, configured alike"
            )
        names = labels or [_label(b, i) for i, b in enumerate(replicas)]
        self._replicas = [_Replica(b, n) for b, n in zip(replicas, names, strict=True)]
        self._retry_after_s = retry_after_s
        self._max_retry_after_s = max_retry_after_s
        self._turn = 0  # round-robin start among equally loaded replicas

    # -- the Backend interface -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        engines = sorted({r.backend.name for r in self._replicas})
        return engines[0] if len(engines) == 1 else "+".join(engines)

    @property
    def model(self) -> str:
        return self._replicas[0].backend.model

    @property
    def capabilities(self) -> Capabilities:
        return self._replicas[0].backend.capabilities

    @property
    def replicas(self) -> list[Backend]:
        return [r.backend for r in self._replicas]

    def stats(self) -> list[dict[str, object]]:
        """Per replica: label, in rotation or not, requests in flight, generations started, failures, last error."""
        return [
            {
                "replica": r.label,
                "healthy": r.down_until is None,
                "outstanding": r.outstanding,
                "served": r.served,
                "failures": r.failures,
                "last_error": r.last_error,
            }
            for r in self._replicas
        ]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[BackendEvent]:
        tried: set[int] = set()
        while True:
            replica = await self._pick(tried)
            tried.add(id(replica))
            replica.outstanding += 1
            replica.served += 1
            streamed = False
            try:
                async with contextlib.aclosing(replica.backend.stream(request)) as events:  # type: ignore[type-var]
                    async for event in events:
                        if isinstance(event, RawDelta) and event.text:
                            streamed = True
                        yield event
                return
            except BackendError as exc:
                if not _takes_replica_out(exc):
                    raise
                self._take_out(replica, exc)
                if streamed:
                    raise  # text already went to the caller; generating it again elsewhere would repeat it
            finally:
                replica.outstanding -= 1

    async def check(self) -> None:
        """Check every replica at once; those that fail are taken out. Raises only when none passes.

        A replica that answers but lacks the model (``ModelNotFound``) is a configuration mistake, not an
        outage, so it is raised even when others pass.
        """
        results = await asyncio.gather(*(r.backend.check() for r in self._replicas), return_exceptions=True)
        for replica, result in zip(self._replicas, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            if isinstance(result, BackendError) and _takes_replica_out(result):
                self._take_out(replica, result)
            elif isinstance(result, Exception):
                raise result
            else:
                self._put_back(replica)
        if all(r.down_until is not None for r in self._replicas):
            raise self._all_down()

    async def list_models(self) -> list[str]:
        up = [r for r in self._replicas if r.down_until is None]
        if not up:
            raise self._all_down()
        for replica in up:
            if isinstance(replica.backend, ListsModels):
                return await replica.backend.list_models()
        raise UserError(f"the {self.name} backend cannot list its models")

    async def aclose(self) -> None:
        for replica in self._replicas:
            if replica.probe is not None:
                replica.probe.cancel()
        await asyncio.gather(*(r.backend.aclose() for r in self._replicas), return_exceptions=True)

    # -- choosing and health -----------------------------------------------------------------------------

    async def _pick(self, tried: set[int]) -> _Replica:
        """The healthy, untried replica with the fewest requests in flight; waits on checks when none is up."""
        now = time.monotonic()
        for replica in self._replicas:
            if replica.down_until is not None and now >= replica.down_until and replica.probe is None:
                replica.probe = asyncio.create_task(self._probe(replica))
        candidates = [r for r in self._replicas if r.down_until is None and id(r) not in tried]
        if not candidates:
            # Nothing in rotation for this request: check the replicas it has not tried now, whatever their
            # schedule, rather than fail while one may be back already.
            waiting = [r for r in self._replicas if id(r) not in tried]
            for replica in waiting:
                if replica.probe is None:
                    replica.probe = asyncio.create_task(self._probe(replica))
            await asyncio.gather(*(asyncio.shield(r.probe) for r in waiting if r.probe is not None))
            candidates = [r for r in waiting if r.down_until is None]
            if not candidates:
                raise self._all_down()
        count = len(self._replicas)
        order = {id(r): (i - self._turn) % count for i, r in enumerate(self._replicas)}
        best = min(candidates, key=lambda r: (r.outstanding, order[id(r)]))
        self._turn = (self._replicas.index(best) + 1) % count
        return best

    async def _probe(self, replica: _Replica) -> None:
        try:
            await replica.backend.check()
        except Exception as exc:  # any failure keeps it out; the next check is further away
            replica.last_error = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            replica.backoff_s = min(self._max_retry_after_s, max(self._retry_after_s, replica.backoff_s * 2))
            replica.down_until = time.monotonic() + replica.backoff_s
        else:
            self._put_back(replica)
        finally:
            replica.probe = None

    def _take_out(self, replica: _Replica, exc: BackendError) -> None:
        replica.failures += 1
        replica.last_error = str(exc)
        if replica.down_until is None:
            replica.backoff_s = self._retry_after_s
            replica.down_until = time.monotonic() + replica.backoff_s

    def _put_back(self, replica: _Replica) -> None:
        replica.down_until = None
        replica.backoff_s = 0.0

    def _all_down(self) -> BackendUnavailable:
        reasons = "\n".join(f"  - {r.label}: {r.last_error or 'not answering'}" for r in self._replicas)
        return BackendUnavailable(
            f"none of the {len(self._replicas)} replicas of {self.model!r} is reachable:\n{reasons}",
            backend=self.name,
        )


def _label(backend: Backend, index: int) -> str:
    for attribute in ("base_url", "host"):
        value = getattr(backend, attribute, None)
        if isinstance(value, str) and value:
            return _shown(value)  # a base_url may carry user:password@ (basic auth at a proxy)
    return f"replica {index + 1} ({backend.name})"


def backend_from_urls(urls: Sequence[str], **options: object) -> Backend:
    """One backend for one URL; a :class:`ReplicaBackend` over them for several (``--backend`` repeated)."""
    from .registry import backend_from_url

    unique = list(dict.fromkeys(u.strip() for u in urls))
    if not unique:
        raise UserError("no backend URL given")
    if len(unique) == 1:
        return backend_from_url(unique[0], **options)
    return ReplicaBackend([backend_from_url(u, **options) for u in unique], labels=[_shown(u) for u in unique])


def _shown(url: str) -> str:
    """``url`` without its user info (a password, or a token given as the user name).

    agentkit takes no credentials from a backend URL (keys go in ``api_key`` or the environment), but people
    write ``vllm://user:KEY@host/model`` anyway, and a label is shown in errors, ``stats()``, progress lines and
    results files: it must not repeat the key.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    _, at, host = authority.rpartition("@")
    return f"{scheme}://***@{host}{slash}{path}" if at else url  # a lone token is written as the user name too
