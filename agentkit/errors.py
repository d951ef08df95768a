"""One exception hierarchy for agentkit.

Errors are split by who has to act (the pattern pydantic-ai and httpx use):

    AgentkitError
    ├── UserError                 the developer or user asked for something invalid (bad URL, bad flag)
    ├── BackendError              talking to an inference engine failed
    │   ├── BackendUnavailable    cannot connect / server went away (retried with backoff)
    │   ├── ModelNotFound         the engine is up but does not have the model
    │   ├── ContextTooLong        the prompt does not fit the model's context window
    │   ├── BackendResponseError  the engine answered with an error status
    │   └── StreamInterrupted     the stream broke off mid-generation
    ├── OutputValidationError     the model's answer did not fit output_type after the allowed retries
    ├── ToolError                 a tool failed (raised, timed out, got invalid arguments)
    │   └── ToolTimeout
    ├── SandboxError              the code sandbox cannot run or was misconfigured
    │   └── SandboxUnavailable    bubblewrap is missing
    ├── ToolsetError              a tool source (an MCP server) could not start or went away
    ├── WorkersUnavailable        a distributed batch has no live worker (Ray cluster unreachable or lost)
    └── SessionError              a saved conversation could not be read or written
        ├── SessionNotFound
        └── SessionCorrupt

Exceptions carry data only (no logging or printing in constructors). Each message says what went wrong
and what to do next, because the CLI shows it to a person as it is.
"""

from __future__ import annotations

__all__ = [
    "AgentkitError",
    "BackendError",
    "BackendResponseError",
    "BackendUnavailable",
    "ContextTooLong",
    "ModelNotFound",
    "OutputValidationError",
    "SandboxError",
    "SandboxUnavailable",
    "SessionCorrupt",
    "SessionError",
    "SessionNotFound",
    "StreamInterrupted",
    "ToolError",
    "ToolTimeout",
    "ToolsetError",
    "UserError",
    "WorkersUnavailable",
]


class AgentkitError(Exception):
    """Base class of every error agentkit raises on purpose."""


class UserError(AgentkitError):
    """Raised when the caller asked for something invalid: a bad backend URL, option or argument."""


class BackendError(AgentkitError):
    """Raised when an inference backend fails."""

    def __init__(self, message: str, *, backend: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        self.status = status


class BackendUnavailable(BackendError):
    """Raised when the backend cannot be reached (not running, wrong address, went away)."""


class ModelNotFound(BackendError):
    """Raised when the backend is reachable but does not serve the requested model."""


class ContextTooLong(BackendError):
    """Raised when the prompt plus the requested output does not fit the model's context window."""


class BackendResponseError(BackendError):
    """Raised when the backend answers a request with an error status not covered by a subclass."""


class StreamInterrupted(BackendError):
    """Raised when a streaming response ends before the model finished (server restarted, connection cut)."""


class OutputValidationError(AgentkitError):
    """Raised when the model's final answer still does not validate into ``output_type`` after the retries.

    ``errors`` holds the last validation message (what the model was told), ``attempts`` how many answers failed.
    """

    def __init__(self, message: str, *, errors: str = "", attempts: int = 0) -> None:
        super().__init__(message)
        self.errors = errors
        self.attempts = attempts


class ToolError(AgentkitError):
    """Raised when a tool cannot run or fails; the loop turns it into a tool response for the model."""


class ToolTimeout(ToolError):
    """Raised when a tool call runs past its time limit."""


class SandboxError(AgentkitError):
    """Raised when the code sandbox is misconfigured or fails to start."""


class SandboxUnavailable(SandboxError):
    """Raised when bubblewrap (bwrap) is not installed and unconfined execution was not explicitly allowed."""


class SessionError(AgentkitError):
    """Raised when a saved conversation cannot be read or written."""


class SessionNotFound(SessionError):
    """Raised when no saved session has the requested id."""


class SessionCorrupt(SessionError):
    """Raised when a session file is unreadable or not an agentkit session; the file is left untouched."""


class ToolsetError(AgentkitError):
    """A tool source (an MCP server) could not start, died, or answered with something unusable."""


class WorkersUnavailable(AgentkitError):
    """Raised when a distributed batch cannot reach its cluster, or every worker is down for too long."""
