"""prism's Python SDK: Ray's core API for Python programs built into
WebAssembly components and run by prism.

    import prism

    @prism.remote
    def square(x):
        return x * x

    print(prism.get([square.remote(i) for i in range(4)]))  # [0, 1, 4, 9]

Build and run with `prism run app.py` (docs/python.md).
"""

from . import exceptions
from ._api import (
    NodeAffinitySchedulingStrategy,
    ObjectRefGenerator,
    cancel,
    component,
    get,
    get_actor,
    get_runtime_context,
    kill,
    put,
    remote,
    wait,
)
from ._values import ActorHandle, ObjectRef

__all__ = [
    "ActorHandle",
    "NodeAffinitySchedulingStrategy",
    "ObjectRef",
    "ObjectRefGenerator",
    "cancel",
    "component",
    "exceptions",
    "get",
    "get_actor",
    "get_runtime_context",
    "kill",
    "put",
    "remote",
    "wait",
]
