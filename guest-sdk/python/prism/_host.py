"""The generated bindings of `prism:core`, and its errors as exceptions.

componentize-py generates `wit_world` when it builds the component, so this
module imports only inside one.
"""

from componentize_py_types import Err
from wit_world.imports import actors, objects, prism_bytes, tasks, types

from . import exceptions as ex

__all__ = ["actors", "objects", "prism_bytes", "tasks", "types", "Err", "call", "error"]

_CHAINED = {
    types.Error_TaskFailed: ex.TaskError,
    types.Error_TaskCrashed: ex.WorkerCrashedError,
    types.Error_Cancelled: ex.TaskCancelledError,
}

_PLAIN = {
    types.Error_NotFound: (ex.ObjectNotFoundError, "not found"),
    types.Error_InvalidArgument: (ex.InvalidArgumentError, "invalid argument"),
    types.Error_LimitExceeded: (ex.LimitExceededError, "limit exceeded"),
    types.Error_ActorDied: (ex.ActorDiedError, "actor died"),
    types.Error_DiskFull: (ex.DiskFullError, "disk full"),
    types.Error_ObjectLost: (ex.ObjectLostError, "object lost"),
    types.Error_HostFailed: (ex.HostFailedError, "host failed"),
}


def error(wit):
    """The exception for the WIT error `wit`."""
    kind = type(wit)
    if kind in _CHAINED:
        exc = _CHAINED[kind]([(link.function, link.message) for link in wit.value])
    elif kind is types.Error_Timeout:
        exc = ex.GetTimeoutError("timed out before the objects were ready")
    else:
        cls, what = _PLAIN[kind]
        exc = cls(f"{what}: {wit.value}")
    exc._wit = wit
    return exc


def call(function, *args):
    """`function(*args)`, a WIT import, with its error raised as an exception."""
    try:
        return function(*args)
    except Err as err:
        raise error(err.value) from None
