"""What a failed prism call raises, as `ray.exceptions` does.

Each kind of the WIT `error` variant is a class of its own; all derive from
`PrismError`. A failed task raises `TaskError` at `get`, with the remote
message and the chain of functions it passed through.
"""


class PrismError(Exception):
    """Any failure prism reports (Ray's `RayError`)."""

    #: The WIT error this came from, so a task that lets it propagate
    #: hands the host the same error, and the chain grows a link.
    _wit = None


class TaskError(PrismError):
    """A task returned an error (Ray's `RayTaskError`).

    `chain` lists `(function, message)` from the task asked for to the one
    that failed first; `function` and `message` are the first failure's.
    """

    def __init__(self, chain):
        self.chain = [tuple(link) for link in chain]
        self.function, self.message = self.chain[-1] if self.chain else ("?", "")
        # As the host says it: "task `f` failed: ..., because task `g` failed: ...".
        super().__init__(", because ".join(f"task `{f}` failed: {m}" for f, m in self.chain))


class WorkerCrashedError(TaskError):
    """A task's instance crashed: a trap, a limit, or `exit` (Ray's
    `WorkerCrashedError`)."""


class TaskCancelledError(TaskError):
    """The task was cancelled (Ray's `TaskCancelledError`)."""


class GetTimeoutError(PrismError, TimeoutError):
    """`get`, `wait` or a generator's next item gave up at its timeout
    (Ray's `GetTimeoutError`); a later `get` of the same refs may succeed."""


class ObjectNotFoundError(PrismError, LookupError):
    """A ref, actor or component this node has never seen."""


class InvalidArgumentError(PrismError, ValueError):
    """A call's arguments are wrong (duplicate refs in `wait`, ...)."""


class LimitExceededError(PrismError):
    """A configured limit was reached; the message names it."""


class ActorDiedError(PrismError):
    """The actor is gone: killed, its constructor failed, or it crashed
    more often than `max_restarts` allows (Ray's `ActorDiedError`)."""


class ObjectLostError(PrismError):
    """The object is gone with the node that held it and cannot be rebuilt:
    it was made by `put` there (Ray's `ObjectLostError`)."""


class DiskFullError(PrismError, OSError):
    """The disk holding the node's objects is full; nothing was stored."""


class HostFailedError(PrismError, OSError):
    """The host's own I/O failed; it logged the cause."""

