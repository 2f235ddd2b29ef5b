"""How one Ray script is both the driver and the workers of a component.

`prism build` wraps the script: the component's app module holds its source
and calls `load` at its top level, which componentize-py runs once at build
time (pre-initialisation, where every prism import traps) and snapshots.
`load` compiles the script, and runs its *definitions* alone: the top-level
imports, functions, classes and constant assignments. Decorators run then,
so the registry of task functions and actor classes is in the snapshot.

- A worker instance (the `worker` export) starts from that snapshot: it
  finds functions and classes by name, and never runs the driver's code.
- The driver (the `wasi:cli/run` export) runs the whole script as
  `__main__`, definitions and driver code together, as Ray runs a script.

A task may read a global that only the driver's code made (Ray captures it
in the function's closure). The first `.remote()` of a function or class
in the driver puts the values of the globals that it, and the functions,
classes and tasks it names, read but a worker lacks, and names them as a
job global; a worker reads that global before the first call of it.
"""

import ast
import builtins
import gc
import inspect
import linecache
import sys
import traceback
import types

from componentize_py_types import Err
from wit_world.exports.worker import CallError_Propagated, CallError_Returned, ClassInfo, FunctionInfo

from . import _api, exceptions
from ._host import actors, call, objects, tasks
from ._values import HOLDS, ObjectRef, encode

#: Task functions and actor classes, by the name `remote` calls them by.
FUNCTIONS = {}
CLASSES = {}


class _Script:
    def __init__(self, source, filename):
        tree = ast.parse(source, filename)
        self.filename = filename
        self.whole = compile(tree, filename, "exec")
        definitions = ast.Module(body=[stmt for stmt in tree.body if _is_definition(stmt)], type_ignores=[])
        self.definitions = compile(definitions, filename, "exec")
        # Tracebacks show the script's lines, though no file holds it here.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


SCRIPT = None
#: The namespace tasks run in: the script's definitions.
WORKER = None
#: The driver's `__main__`, while it runs.
DRIVER = None
#: Targets whose globals the driver has captured, or a worker has read.
_CAPTURED = set()
_READ = set()
#: The actor this instance is, once constructed.
_ACTOR = None
_GENERATOR = types.GeneratorType


def _is_definition(stmt):
    """Whether a top-level statement defines rather than drives."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Constant)  # a docstring
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        if stmt.value is None:
            return True
        try:
            ast.literal_eval(stmt.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return False
        return True
    if isinstance(stmt, ast.Try):
        blocks = [stmt.body, stmt.orelse, stmt.finalbody, *(handler.body for handler in stmt.handlers)]
        return all(_is_definition(inner) for block in blocks for inner in block)
    return False


def _main_module(filename):
    module = types.ModuleType("__main__")
    module.__file__ = filename
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    return module


def load(source, filename):
    """Compiles the script and runs its definitions (at build time)."""
    global SCRIPT, WORKER
    SCRIPT = _Script(source, filename)
    WORKER = _main_module(filename).__dict__
    exec(SCRIPT.definitions, WORKER)
    # What the snapshot holds lives as long as the instance: the cyclic
    # collector need not walk it again at every collection.
    gc.freeze()


# ---- captured globals ----------------------------------------------------


def _code_names(code, names):
    names.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, names)


def _codes(target):
    if inspect.isclass(target):
        for member in vars(target).values():
            member = getattr(member, "__func__", member)
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member):
                yield member.__code__
    elif inspect.isfunction(target):
        yield target.__code__


def _reachable(target, namespace):
    """`target` and the script's functions, classes and tasks it names, with
    every name their code reads."""
    seen, names, remotes, stack = set(), set(), [], [target]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        own = set()
        for code in _codes(item):
            _code_names(code, own)
        names |= own
        for name in own:
            value = namespace.get(name)
            if isinstance(value, _api.RemoteFunction):
                remotes.append(value._function)
                stack.append(value._function)
            elif isinstance(value, _api.ActorClass):
                remotes.append(value._class)
                stack.append(value._class)
            elif (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == "__main__":
                stack.append(value)
    return names, remotes


def _global_name(target):
    return f"python:globals:{_api._name_of(target)}"


def capture(target):
    """In the driver, before the first `.remote()` of `target`: sends the
    globals it and what it calls read and a worker lacks."""
    if DRIVER is None or target in _CAPTURED:
        return
    for each in [target, *_reachable(target, DRIVER)[1]]:
        if each in _CAPTURED:
            continue
        _CAPTURED.add(each)
        names, _ = _reachable(each, DRIVER)
        missing = {name: DRIVER[name] for name in sorted(names) if name in DRIVER and name not in WORKER}
        if not missing:
            continue
        for name, value in missing.items():
            try:
                encode(value)
            except TypeError as err:
                raise TypeError(
                    f"`{each.__qualname__}` reads the global `{name}`, which only the driver's code makes, "
                    f"and {err}: make it in a definition at the top level, or pass it as an argument"
                ) from None
        call(objects.set_global, _global_name(each), _api.put(missing)._words)


def _read_globals(target):
    """In a worker, before the first call of `target`: the globals the
    driver captured for it."""
    if target in _READ:
        return
    _READ.add(target)
    try:
        words = call(objects.get_global, _global_name(target))
    except exceptions.ObjectNotFoundError:
        return
    WORKER.update(_api.get(ObjectRef(words)))


# ---- the exports ---------------------------------------------------------


def _type_name(annotation):
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _params(function, skip_self=False):
    params = list(inspect.signature(function).parameters.values())
    if skip_self:
        params = params[1:]
    return [(p.name, _type_name(p.annotation)) for p in params]


def _returns(function):
    annotation = inspect.signature(function).return_annotation
    return "()" if annotation is None else _type_name(annotation)


def _function_info(name, function, skip_self=False):
    return FunctionInfo(name=name, params=_params(function, skip_self), returns=_returns(function))


def _refused(err):
    """The WIT call-error for the exception `err` a call raised."""
    if isinstance(err, exceptions.PrismError) and err._wit is not None:
        return Err(CallError_Propagated(err._wit))
    # The traceback from the user's frame on: the SDK's own is noise.
    frames = err.__traceback__.tb_next if err.__traceback__ is not None else None
    return Err(CallError_Returned("".join(traceback.format_exception(type(err), err, frames)).rstrip()))


def _arguments(payloads):
    value = _api._value
    return [value(payload) for payload in payloads]


def _answer(function, payloads):
    """Runs `function` on the values of `payloads` (a generator's items go
    to its stream) and encodes what it returns."""
    try:
        result = function(*_arguments(payloads)) if payloads else function()
        if type(result) is _GENERATOR:
            for item in result:
                call(tasks.yield_item, _api.put(item)._words)
            result = None
        data = encode(result)
    except Exception as err:
        raise _refused(err) from None
    # The host stores the result, which holds its refs, after this returns:
    # the refs `result` drops from here on are told with the next call.
    HOLDS.quiet = True
    return data


#: Task functions by name, once their globals are read; the actor's
#: methods, bound once (as Ray binds them when the actor is made).
_TARGETS = {}
_METHODS = {}
_next_call = actors.next_call


def _target(function):
    task = FUNCTIONS.get(function)
    if task is None:
        raise _refused(LookupError(f"no task function `{function}`: there are {', '.join(FUNCTIONS)}"))
    _read_globals(task._function)
    _TARGETS[function] = task._function
    return task._function


def _method(method):
    bound = getattr(_ACTOR, method, None) if method[:1] != "_" else None
    if bound is None:
        raise _refused(AttributeError(f"`{type(_ACTOR).__name__}` has no method `{method}`"))
    _METHODS[method] = bound
    return bound


class Worker:
    """The `worker` export: runs task functions and actor methods."""

    def functions(self):
        return [_function_info(name, f._function) for name, f in FUNCTIONS.items()]

    def classes(self):
        infos = []
        for name, actor in CLASSES.items():
            cls = actor._class
            methods = [
                _function_info(method, member, skip_self=True)
                for method, member in vars(cls).items()
                if inspect.isfunction(member) and not method.startswith("_")
            ]
            infos.append(ClassInfo(name=name, params=_params(cls.__init__, skip_self=True), methods=methods))
        return infos

    def run(self, function, args):
        HOLDS.quiet = False
        if HOLDS.deferred:
            HOLDS.begin_call()
        return _answer(_TARGETS.get(function) or _target(function), args)

    def construct(self, class_, args):
        global _ACTOR
        HOLDS.begin_call()
        actor = CLASSES.get(class_)
        if actor is None:
            raise _refused(LookupError(f"no actor class `{class_}`: there are {', '.join(CLASSES)}"))
        _read_globals(actor._class)
        try:
            _ACTOR = actor._class(*_arguments(args))
        except Exception as err:
            raise _refused(err) from None

    def call_method(self, method, args):
        # The calls queued behind this one run here too, each answered
        # through `next-call`, which hands over the next: one export call
        # serves the queue.
        while True:
            HOLDS.quiet = False
            if HOLDS.deferred:
                HOLDS.begin_call()
            queued = _next_call(_answer(_METHODS.get(method) or _method(method), args))
            if queued is None:
                return b""
            method, args = queued


class Run:
    """The `wasi:cli/run` export: the script itself, as the driver."""

    def run(self):
        global DRIVER
        DRIVER = _main_module(SCRIPT.filename).__dict__
        try:
            exec(SCRIPT.whole, DRIVER)
        except SystemExit as exit:
            if exit.code not in (None, 0):
                if not isinstance(exit.code, int):
                    print(exit.code, file=sys.stderr)
                raise Err(None) from None
        except BaseException:
            traceback.print_exc()
            raise Err(None) from None
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
