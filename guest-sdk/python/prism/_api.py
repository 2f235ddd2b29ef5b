"""Ray's core API: `remote`, `put`, `get`, `wait`, actors, generators."""

import inspect
import operator

from . import _host, _script
from ._host import Err, actors, call, objects, prism_bytes, tasks, types
from ._values import HOLDS, INLINE_MAX, ActorHandle, ObjectRef, decode, encode

_words_of = operator.attrgetter("_words")
_REF_TYPE = {ObjectRef}


def _only_refs(values):
    """Whether `values` holds only refs (in C loops: lists of refs are long)."""
    return set(map(type, values)) <= _REF_TYPE

# What `.options()` takes, with the defaults Ray has.
PLACEMENT_OPTIONS = {"resources": None, "num_gpus": 0, "scheduling_strategy": None}
TASK_OPTIONS = {"num_cpus": 1, "max_retries": 3, "retry_exceptions": False, "name": None, **PLACEMENT_OPTIONS}
ACTOR_OPTIONS = {
    "name": None,
    "lifetime": None,
    "max_restarts": 0,
    "max_task_retries": 0,
    "num_cpus": 0,
    **PLACEMENT_OPTIONS,
}


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` (from `get_runtime_context().get_node_id()`);
    with `soft=True`, elsewhere if that node is gone or cannot run it."""

    def __init__(self, node_id, soft):
        self.node_id = node_id
        self.soft = soft


class RuntimeContext:
    """What `get_runtime_context()` tells about where the code runs."""

    def get_node_id(self):
        return tasks.node_id()


def get_runtime_context():
    return RuntimeContext()


def _placement(opts):
    """`resources=`, `num_gpus=` (Ray's resource "GPU") and
    `scheduling_strategy=` as the WIT takes them."""
    resources = dict(opts["resources"] or {})
    if opts["num_gpus"]:
        resources["GPU"] = opts["num_gpus"]
    amounts = [types.ResourceAmount(name=name, amount=float(amount)) for name, amount in resources.items()]
    strategy = opts["scheduling_strategy"]
    if strategy in (None, "DEFAULT"):
        node = None
    elif isinstance(strategy, NodeAffinitySchedulingStrategy):
        node = types.NodeAffinity(node=strategy.node_id, soft=bool(strategy.soft))
    else:
        raise ValueError(f"scheduling_strategy must be None, 'DEFAULT' or a NodeAffinitySchedulingStrategy, not {strategy!r}")
    return amounts, node


def _checked(options, allowed, what):
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{what} takes no option {', '.join(unknown)} (it takes {', '.join(allowed)})")
    return {**allowed, **options}


def _name_of(obj):
    """The name a task function or actor class goes by between instances."""
    if obj.__module__ == "__main__":
        return obj.__qualname__
    return f"{obj.__module__}.{obj.__qualname__}"


def _args(args):
    """`args` as the WIT passes them: top-level refs apart, to be resolved."""
    return [
        types.Arg_Object(arg._words) if type(arg) is ObjectRef else types.Arg_Value(encode(arg)) for arg in args
    ]


def _positional(function, args, kwargs):
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(f"`{function.__qualname__}` takes **kwargs, which prism cannot pass: name the arguments")
    return bound.args


def _timeout_ms(timeout):
    if timeout is None:
        return None
    return max(0, int(timeout * 1000))


def _task_options(opts, component):
    resources, node = _placement(opts)
    return types.TaskOptions(
        max_retries=opts["max_retries"],
        retry_exceptions=opts["retry_exceptions"],
        num_cpus=opts["num_cpus"],
        component=component,
        resources=resources,
        node=node,
    )


class RemoteFunction:
    """A function that runs as a task: `f.remote(...)` returns a ref at once
    (for a generator function, an `ObjectRefGenerator`)."""

    def __init__(self, function, options):
        self._function = function
        self._name = _name_of(function)
        self._options = _checked(options, TASK_OPTIONS, "a remote function")
        self._wit_options = _task_options(self._options, None)
        # Whether the driver has sent the globals it reads (`_script.capture`).
        self._captured = False
        self._generator = inspect.isgeneratorfunction(function)
        # None before its first call, False after it, then the
        # `task-function` its calls go through (see `_prepare`): made in the
        # instance that calls it, never in the build's snapshot.
        self._prepared = None
        self.__doc__ = function.__doc__
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        raise TypeError(f"remote function `{self._name}` cannot be called directly: use `{self._name}.remote()`")

    def options(self, **options):
        """This function with other options (`num_cpus`, `max_retries`,
        `retry_exceptions`, `name`, `resources`, `num_gpus`,
        `scheduling_strategy`)."""
        return RemoteFunction(self._function, {**self._options, **options})

    def remote(self, *args, **kwargs):
        if not self._captured and _script.DRIVER is not None:
            _script.capture(self._function)
            self._captured = True
        if kwargs:
            args = _positional(self._function, args, kwargs)
        args = _args(args) if args else []
        prepared = self._prepared or self._prepare()
        if prepared is None:
            if self._generator:
                return ObjectRefGenerator(tasks.remote_generator(self._name, args, self._wit_options))
            return ObjectRef(tasks.remote(self._name, args, self._wit_options))
        if self._generator:
            return ObjectRefGenerator(prepared.remote_generator(args))
        return ObjectRef(prepared.remote(args))

    def _prepare(self):
        """None for the first call, which names the function and its options
        itself (`f.options(...).remote()` made once costs one host call);
        at the second, the `task-function` that names them once."""
        if self._prepared is None:
            self._prepared = False
            return None
        self._prepared = tasks.TaskFunction(self._name, self._wit_options)
        return self._prepared


def _count(n):
    """Ray's -1 (for ever) as the WIT's largest count."""
    return 2**32 - 1 if n == -1 else n


def _actor_options(opts, component):
    if opts["lifetime"] not in (None, "detached", "non_detached"):
        raise ValueError(f"lifetime must be None, 'detached' or 'non_detached', not {opts['lifetime']!r}")
    resources, node = _placement(opts)
    return types.ActorOptions(
        component=component,
        name=opts["name"],
        detached=opts["lifetime"] == "detached",
        max_restarts=_count(opts["max_restarts"]),
        max_task_retries=_count(opts["max_task_retries"]),
        resources=resources,
        node=node,
    )


class ActorClass:
    """A class whose instances are actors: `Class.remote(...)` creates one
    and returns its handle at once."""

    def __init__(self, cls, options):
        self._class = cls
        self._name = _name_of(cls)
        self._options = _checked(options, ACTOR_OPTIONS, "an actor class")
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError(f"actor class `{self._name}` cannot be made directly: use `{self._name}.remote()`")

    def options(self, **options):
        """This class with other options (`name`, `lifetime="detached"`,
        `max_restarts`, `max_task_retries`, `resources`, `num_gpus`,
        `scheduling_strategy`)."""
        return ActorClass(self._class, {**self._options, **options})

    def remote(self, *args, **kwargs):
        _script.capture(self._class)
        opts = self._options
        if kwargs:
            # Bound against `__init__`, past its `self`.
            args = _positional(self._class.__init__, (None, *args), kwargs)[1:]
        args = _args(args)
        return ActorHandle(call(actors.create, self._name, args, _actor_options(opts, None)), self._class)


class ActorMethod:
    """`handle.method`: `.remote(...)` calls it."""

    def __init__(self, handle, method, streaming=None):
        self._handle = handle
        self._method = method
        if streaming is None:
            streaming = inspect.isgeneratorfunction(getattr(handle._class, method, None))
        self._streaming = streaming
        # As `RemoteFunction._prepared`: an `actor-method` from the second call on.
        self._prepared = None

    def options(self, num_returns=None):
        """`num_returns="streaming"` calls a generator method of a handle
        whose class is not known here."""
        return ActorMethod(self._handle, self._method, num_returns == "streaming")

    def remote(self, *args):
        args = _args(args) if args else []
        prepared = self._prepared or self._prepare()
        if prepared is None:
            if self._streaming:
                return ObjectRefGenerator(actors.call_generator(self._handle._words, self._method, args))
            return ObjectRef(actors.call(self._handle._words, self._method, args))
        if self._streaming:
            return ObjectRefGenerator(prepared.call_generator(args))
        return ObjectRef(prepared.call(args))

    def _prepare(self):
        if self._prepared is None:
            self._prepared = False
            return None
        self._prepared = actors.ActorMethod(self._handle._words, self._method)
        return self._prepared

    def __call__(self, *args):
        raise TypeError(f"actor method `{self._method}` cannot be called directly: use `.{self._method}.remote()`")


ActorHandle._make_method = ActorMethod


class ObjectRefGenerator:
    """The refs a generator task yields, each as soon as it is made (Ray's
    streaming generators). Iterate it; `prism.get` each ref."""

    def __init__(self, stream):
        self._stream = stream
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        return self.next(timeout=None)

    def next(self, timeout=None):
        """The next item's ref; `StopIteration` at the end, `GetTimeoutError`
        after `timeout` seconds."""
        if self._done:
            raise StopIteration
        HOLDS.before_blocking()
        item = call(tasks.next_item, self._stream, _timeout_ms(timeout))
        if item is None:
            self._done = True
            raise StopIteration
        return ObjectRef(item)

    def close(self):
        """Drops the items not taken yet; later yields are dropped."""
        if not self._done:
            self._done = True
            tasks.close_generator(self._stream)

    def __del__(self):
        self.close()


class Component:
    """Another component deployed (or loaded with `prism run --with`) under a
    name, whatever its language: `prism.component("ocr").recognize.remote(page)`
    runs its function `recognize`; `.actor("Counter").remote()` makes one of
    its actors."""

    def __init__(self, name):
        self._name = name
        self._id = None

    def _words(self):
        if self._id is None:
            self._id = call(tasks.component, self._name)
        return self._id

    def __getattr__(self, function):
        if function.startswith("__"):
            raise AttributeError(function)
        return ForeignFunction(self, function, TASK_OPTIONS)

    def actor(self, cls, **options):
        """The actor class `cls` of this component, with `ActorClass` options."""
        return ForeignClass(self, cls, _checked(options, ACTOR_OPTIONS, "an actor class"))


class ForeignFunction:
    """A function of another component: `.remote(...)` returns a ref (or,
    with `.options(num_returns="streaming")`, an `ObjectRefGenerator`)."""

    def __init__(self, component, name, options, streaming=False):
        self._component, self._name, self._options, self._streaming = component, name, options, streaming

    def options(self, num_returns=None, **options):
        merged = _checked({**self._options, **options}, TASK_OPTIONS, "a remote function")
        return ForeignFunction(self._component, self._name, merged, num_returns == "streaming")

    def remote(self, *args):
        wit = _task_options(self._options, self._component._words())
        if self._streaming:
            return ObjectRefGenerator(tasks.remote_generator(self._name, _args(args), wit))
        return ObjectRef(tasks.remote(self._name, _args(args), wit))


class ForeignClass:
    """An actor class of another component: `.remote(...)` makes an actor."""

    def __init__(self, component, name, options):
        self._component, self._name, self._options = component, name, options

    def remote(self, *args):
        wit = _actor_options(self._options, self._component._words())
        return ActorHandle(call(actors.create, self._name, _args(args), wit))


def component(name):
    """The component deployed (or loaded with `--with`) under `name`."""
    return Component(name)


def remote(*args, **options):
    """Marks a function as a task or a class as an actor, as `ray.remote`:
    `@prism.remote` or `@prism.remote(num_cpus=2, max_retries=1)`."""

    def mark(target):
        if inspect.isclass(target):
            marked = ActorClass(target, options)
            _script.CLASSES[marked._name] = marked
        elif callable(target):
            marked = RemoteFunction(target, options)
            _script.FUNCTIONS[marked._name] = marked
        else:
            raise TypeError(f"@prism.remote marks a function or a class, not a {type(target).__name__}")
        return marked

    if len(args) == 1 and not options and callable(args[0]):
        return mark(args[0])
    if args:
        raise TypeError("@prism.remote takes options by keyword: @prism.remote(num_cpus=2)")
    return mark


_BYTES = (bytes, bytearray, memoryview)


def put(value):
    """Stores `value` and returns its ref. Byte strings are stored as they
    are, without an encoding step."""
    kind = type(value)
    if kind is ObjectRef or kind is ObjectRefGenerator:
        raise TypeError("put() of an ObjectRef is not allowed: pass the ref itself, or put it in a list")
    try:
        if kind in _BYTES and len(value) >= 256:
            # Not encoded: the host reads the bytes straight from this memory.
            data = bytes(value)
            words = prism_bytes.put_bytes(data)
        else:
            data = encode(value)
            words = objects.put(data)
    except Err as err:
        raise _host.error(err.value) from None
    if len(data) < INLINE_MAX:
        HOLDS.small.add(words)
    return ObjectRef(words)


_Payload_Bytes = types.Payload_Bytes


def _value(payload):
    if type(payload) is _Payload_Bytes:
        return decode(payload.value)
    return decode(call(prism_bytes.read, payload.value.object))


def _value_of(id, payload):
    """The value of `payload`, got for the ref `id`, noting a small one (see
    `_Holds`)."""
    if type(payload) is _Payload_Bytes:
        HOLDS.small.add(id)
        return decode(payload.value)
    return _value(payload)


def get(refs, *, timeout=None):
    """The value of a ref, or the values of a list of refs in order
    (duplicates allowed). Blocks until ready; raises the task's error, or
    `GetTimeoutError` after `timeout` seconds."""
    if HOLDS.dropped:
        HOLDS.flush()
    if type(refs) is ObjectRef:
        words = refs._words
        try:
            payload = objects.get([words], None if timeout is None else _timeout_ms(timeout))[0]
        except Err as err:
            raise _host.error(err.value) from None
        return _value_of(words, payload)
    try:
        words = list(map(_words_of, refs))
    except (AttributeError, TypeError):
        words = None
    if words is None or not _only_refs(refs):
        raise TypeError(f"get() takes an ObjectRef or a list of them, not {refs!r}")
    return list(map(_value_of, words, call(objects.get, words, _timeout_ms(timeout))))


def wait(refs, *, num_returns=1, timeout=None, fetch_local=True):
    """`(ready, not_ready)`: the first `num_returns` refs to be ready (or
    fewer, once `timeout` seconds pass), each list in the order of `refs`."""
    refs = list(refs)
    try:
        words = list(map(_words_of, refs))
    except AttributeError:
        words = None
    if words is None or not _only_refs(refs):
        raise TypeError("wait() takes a list of ObjectRefs")
    HOLDS.before_blocking()
    positions = call(objects.wait, words, num_returns, _timeout_ms(timeout))
    ready = [refs[i] for i in positions]
    # The rest, in order, as slices between the ready ones (a loop of
    # one-at-a-time waits over a long list stays cheap).
    not_ready, start = [], 0
    for i in positions:
        not_ready += refs[start:i]
        start = i + 1
    not_ready += refs[start:]
    return ready, not_ready


def get_actor(name):
    """The live actor named `name`."""
    return ActorHandle(call(actors.get_actor, name))


def kill(actor, *, no_restart=True):
    """Ends `actor`; with `no_restart=False` it restarts if it has restarts left."""
    call(actors.kill, actor._words, no_restart)


def cancel(ref, *, force=False, recursive=True):
    """Cancels the task whose result is `ref` (or a generator): its `get`
    raises `TaskCancelledError`."""
    words = ref._stream if isinstance(ref, ObjectRefGenerator) else ref._words
    call(tasks.cancel, words, recursive)


__all__ = ["remote", "put", "get", "wait", "get_actor", "kill", "cancel", "component", "ObjectRefGenerator"]
