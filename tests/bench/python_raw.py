# Ray's microbenchmark cases against the generated bindings alone, no SDK:
# the floor the Python SDK's own cost is measured against (tests/bench/python.sh).
# Like the SDK, it releases the refs it drops, in batches of 64.
import sys
import time

from wit_world import exports
from wit_world.exports.worker import ClassInfo, FunctionInfo
from wit_world.imports import actors, objects, tasks, types

OK = b"\xc4\x02ok"
OPTS = types.TaskOptions(max_retries=3, retry_exceptions=False, num_cpus=1, component=None, resources=[], node=None)


class Worker(exports.Worker):
    def functions(self):
        return [FunctionInfo(name="small_value", params=[], returns="bytes")]

    def run(self, function, args):
        return OK

    def classes(self):
        return [ClassInfo(name="Server", params=[], methods=[FunctionInfo(name="small_value", params=[], returns="bytes")])]

    def construct(self, class_, args):
        pass

    def call_method(self, method, args):
        # As the SDK serves an actor: the calls queued behind this one, here.
        while actors.next_call(OK) is not None:
            pass
        return b""


def timeit(name, f, multiplier=1.0, unit="ops/s", seconds=1.0):
    f()
    rates = []
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            f()
            n += 1
        rates.append(n * multiplier / (time.perf_counter() - start))
    print(f"{name} {sorted(rates)[1]:.2f} {unit}", flush=True)


DROPPED = []


def drop(ref):
    """Lets the host free `ref`'s object, in batches of 64 as the SDKs do."""
    DROPPED.append(ref)
    if len(DROPPED) >= 64:
        objects.release(DROPPED)
        DROPPED.clear()


def sync_task():
    ref = SMALL_VALUE.remote([])
    objects.get([ref], None)
    drop(ref)


class Run(exports.Run):
    def run(self):
        global SMALL_VALUE
        # Named once, as the SDK does from a function's second call on.
        SMALL_VALUE = tasks.TaskFunction("small_value", OPTS)
        seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
        value = objects.put(b"\x00")
        timeit("single_client_get_calls", lambda: objects.get([value], None), seconds=seconds)
        timeit("single_client_put_calls", lambda: drop(objects.put(b"\x00")), seconds=seconds)
        timeit("single_client_tasks_sync", sync_task, seconds=seconds)

        def batch():
            refs = [SMALL_VALUE.remote([]) for _ in range(1000)]
            objects.get(refs, None)
            objects.release(refs)

        timeit("single_client_tasks_async", batch, 1000.0, seconds=seconds)

        actor_options = types.ActorOptions(
            component=None, name=None, detached=False, max_restarts=0, max_task_retries=0, resources=[], node=None
        )
        server = actors.create("Server", [], actor_options)
        method = actors.ActorMethod(server, "small_value")

        def actor_batch():
            refs = [method.call([]) for _ in range(1000)]
            objects.get(refs, None)
            objects.release(refs)

        timeit("1_1_actor_calls_async", actor_batch, 1000.0, seconds=seconds)
