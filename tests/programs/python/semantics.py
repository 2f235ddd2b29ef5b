# Ray's semantics, from Python: each case prints what it saw, and
# tests/all/python.rs checks the lines. `prism run semantics.py -- CASE…`.
import sys
import time

import prism
from prism.exceptions import (
    ActorDiedError,
    GetTimeoutError,
    InvalidArgumentError,
    PrismError,
    TaskCancelledError,
    TaskError,
)


@prism.remote
def identity(x):
    return x


@prism.remote
def inc(x: int) -> int:
    return x + 1


@prism.remote
def spin_for(seconds, value):
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pass
    return value


@prism.remote
def fail(message):
    raise ValueError(message)


@prism.remote
def relay(ref_list):
    return prism.get(ref_list[0])


@prism.remote
def forever():
    while True:
        pass


@prism.remote
def memory_bomb():
    blocks = []
    while True:
        blocks.append(bytearray(16 << 20))


@prism.remote
def deep(n):
    return deep_call(n)


@prism.remote(max_retries=0)
def hoard():
    # Keeps every task function it calls twice (the second call makes the
    # host's handle): past what an instance may hold, a trap.
    kept = []
    for i in range(5000):
        f = identity.options(max_retries=i)
        f.remote(i)
        f.remote(i)
        kept.append(f)


def deep_call(n):
    return 0 if n == 0 else 1 + deep_call(n - 1)


@prism.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def increment(self):
        self.value += 1
        return self.value

    def get(self):
        return self.value

    def upto(self, n):
        yield from range(self.value, n)


@prism.remote
class Broken:
    def __init__(self):
        raise RuntimeError("no state to start from")

    def ping(self):
        return "pong"


@prism.remote
def flaky(counter, fail_until):
    n = prism.get(counter.increment.remote())
    if n < fail_until:
        raise RuntimeError(f"attempt {n} fails")
    return f"attempt {n} succeeded"


@prism.remote
def count_to(n):
    for i in range(n):
        yield i


@prism.remote
def fail_after(n):
    for i in range(n):
        yield i
    raise KeyError("out of items")


@prism.remote
class Queue:
    """Calls queued behind a running one, which its instance takes in place
    (`actors.next-call`): each keeps its own result, failure or crash."""

    def __init__(self):
        self.seen = 0

    def hold(self, seconds):
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            pass
        return "held"

    def step(self):
        self.seen += 1
        return self.seen

    def fail(self):
        raise ValueError(f"fails after {self.seen}")

    def upto(self, n):
        yield from range(self.seen, n)

    def crash(self):
        blocks = []
        while True:
            blocks.append(bytearray(16 << 20))


@prism.remote(max_retries=0)
def next_call_in_a_task():
    from prism._host import actors

    return actors.next_call(b"\xc0")


def show(label, thunk):
    try:
        print(f"{label}: ok {thunk()!r}")
    except PrismError as err:
        print(f"{label}: {type(err).__name__} {err}")


def get_order():
    one, two = prism.put(1), prism.put(2)
    show("get with duplicates", lambda: prism.get([two, one, two, one]))
    show("get one", lambda: prism.get(one))


def get_timeout():
    slow = spin_for.remote(1.0, "done")
    try:
        prism.get(slow, timeout=0.05)
        print("no timeout")
    except GetTimeoutError as err:
        print(f"timed out: {isinstance(err, TimeoutError)}")
    show("then", lambda: prism.get(slow))


def wait_forms():
    print("empty:", prism.wait([]))
    fast = [prism.put(i) for i in range(3)]
    slow = spin_for.remote(1.0, "slow")
    ready, not_ready = prism.wait([slow, *fast], num_returns=3)
    print("first 3:", ready == fast, not_ready == [slow])
    ready, not_ready = prism.wait([slow], timeout=0)
    print("timeout 0:", ready, len(not_ready))
    ready, not_ready = prism.wait([slow, *fast], num_returns=4)
    print("all:", len(ready), not_ready)
    show("num_returns 0", lambda: prism.wait(fast, num_returns=0))
    show("duplicates", lambda: prism.wait([fast[0], fast[0]]))


def chain():
    ref = prism.put(0)
    for _ in range(100):
        ref = inc.remote(ref)
    show("100-deep chain", lambda: prism.get(ref))


def errors():
    try:
        prism.get(identity.remote(fail.remote("boom")))
    except TaskError as err:
        print("consumer chain:", [function for function, _ in err.chain])
        print("first failure:", err.function, err.message.splitlines()[-1])
    try:
        prism.get(relay.remote([fail.remote("deep")]))
    except TaskError as err:
        print("relay chain:", [function for function, _ in err.chain], err.message.splitlines()[-1])


def retries():
    counter = Counter.remote()
    show("retry_exceptions off", lambda: prism.get(flaky.remote(counter, 2)))
    counter = Counter.remote()
    retried = flaky.options(retry_exceptions=True, max_retries=3)
    show("retry_exceptions on", lambda: prism.get(retried.remote(counter, 3)))
    counter = Counter.remote()
    too_few = flaky.options(retry_exceptions=True, max_retries=1)
    show("too few retries", lambda: prism.get(too_few.remote(counter, 4)))


def actors():
    counter = Counter.remote(10)
    refs = [counter.increment.remote() for _ in range(100)]
    print("in order:", prism.get(refs) == list(range(11, 111)))
    named = Counter.options(name="shared").remote()
    prism.get(named.increment.remote())
    show("by name", lambda: prism.get(prism.get_actor("shared").increment.remote()))
    show("unknown name", lambda: prism.get_actor("nobody"))
    show("name taken", lambda: Counter.options(name="shared").remote())
    prism.kill(named)
    show("after kill", lambda: prism.get(named.get.remote()))
    restarting = Counter.options(max_restarts=1).remote(5)
    prism.get(restarting.increment.remote())
    prism.kill(restarting, no_restart=False)
    show("restarted, state anew", lambda: prism.get(restarting.increment.remote()))
    broken = Broken.remote()
    try:
        prism.get(broken.ping.remote())
    except ActorDiedError as err:
        print("failed constructor:", "no state to start from" in str(err))


def queued():
    # Each batch queues behind a call that holds the actor.
    q = Queue.options(max_restarts=1).remote()
    held = [q.hold.remote(0.3), *[q.step.remote() for _ in range(100)]]
    failed, after = q.fail.remote(), [q.step.remote(), q.step.remote()]
    items, last = q.upto.remote(105), q.step.remote()
    print("queued steps:", prism.get(held[1:]) == list(range(1, 101)))
    show("a failure in the queue", lambda: prism.get(failed))
    print("after it:", prism.get(after))
    print("a generator in the queue:", [prism.get(ref) for ref in items], prism.get(last))
    kept, cancelled, later = q.hold.remote(0.3), q.step.remote(), q.step.remote()
    prism.cancel(cancelled)
    show("cancelled in the queue", lambda: prism.get(cancelled))
    print("around it:", prism.get([kept, later]))
    before = [q.hold.remote(0.3), q.step.remote(), q.step.remote()]
    crashed, anew = q.crash.remote(), [q.step.remote(), q.step.remote()]
    print("before a crash:", prism.get(before))
    try:
        prism.get(crashed)
    except PrismError as err:
        print("the crash:", type(err).__name__)
    print("after the restart:", prism.get(anew))
    # A kill while a call taken in place runs: it and the calls behind it die.
    first, running, behind = q.step.remote(), q.hold.remote(30), q.step.remote()
    prism.get(first)
    prism.kill(q)
    show("killed while taken in place", lambda: prism.get(running))
    show("behind it", lambda: prism.get(behind))
    show("next-call in a task", lambda: prism.get(next_call_in_a_task.remote()))


def generators():
    print("items:", [prism.get(ref) for ref in count_to.remote(4)])
    seen = []
    try:
        for ref in fail_after.remote(2):
            seen.append(prism.get(ref))
    except TaskError as err:
        print("then fails:", seen, err.message.splitlines()[-1])


def cancel():
    ref = forever.remote()
    time.sleep(0.2)
    prism.cancel(ref)
    try:
        prism.get(ref)
    except TaskCancelledError as err:
        print("cancelled:", err.function)


@prism.remote
def node_id():
    return prism.get_runtime_context().get_node_id()


def placement():
    """Run with `--resources gpu=1,GPU=1`."""
    here = prism.get_runtime_context().get_node_id()
    show("resources", lambda: prism.get(node_id.options(resources={"gpu": 1}).remote()) == here)
    show("num_gpus", lambda: prism.get(node_id.options(num_gpus=0.5).remote()) == here)
    pinned = prism.NodeAffinitySchedulingStrategy(here, soft=False)
    show("pinned here", lambda: prism.get(node_id.options(scheduling_strategy=pinned).remote()) == here)
    show("missing", lambda: prism.get(node_id.options(resources={"tpu": 1}).remote()))
    elsewhere = prism.NodeAffinitySchedulingStrategy("gone", soft=True)
    show("soft elsewhere", lambda: prism.get(node_id.options(scheduling_strategy=elsewhere).remote()) == here)
    holder = Counter.options(resources={"gpu": 1}).remote()
    prism.get(holder.increment.remote())
    try:
        prism.get(node_id.options(resources={"gpu": 1}).remote(), timeout=0.5)
    except GetTimeoutError:
        print("while an actor holds the gpu: waits")
    prism.kill(holder)
    show("then", lambda: prism.get(node_id.options(resources={"gpu": 1}).remote()) == here)


def limits():
    show("endless loop", lambda: prism.get(forever.remote()))
    show("memory bomb", lambda: prism.get(memory_bomb.remote()))
    show("deep recursion", lambda: prism.get(deep.remote(100_000)))
    show("hoarding task functions", lambda: prism.get(hoard.remote()))
    show("others", lambda: prism.get([inc.remote(i) for i in range(4)]))


def lifetime():
    # A ref rebuilt from the id of one dropped: does the host still keep it?
    big = prism.put(bytes(1 << 20))
    words = big._words
    del big
    prism.get(identity.remote(0))
    show("large, after a blocking call", lambda: prism.get(prism.ObjectRef(words)))
    small = prism.put(7)
    words = small._words
    del small
    prism.get(identity.remote(0))
    show("small, batch not full", lambda: prism.get(prism.ObjectRef(words)))


def prepared():
    # From its second call on, a function or an actor method is called
    # through a handle the host keeps (`task-function`, `actor-method`),
    # which goes with the last reference to it: more are made and dropped
    # here than an instance may hold at once.
    named = Counter.options(name="prepared").remote()
    total = 0
    for i in range(5000):
        f = inc.options(max_retries=1 + i % 2)
        total += sum(prism.get([f.remote(i), f.remote(i)]))
        handle = prism.get_actor("prepared")
        prism.get([handle.increment.remote(), handle.increment.remote()])
    print("tasks:", total, "calls:", prism.get(named.get.remote()))
    print("generators:", [[prism.get(r) for r in count_to.remote(3)] for _ in range(3)])
    print("generator methods:", [[prism.get(r) for r in named.upto.remote(10_003)] for _ in range(3)])


CASES = {
    "get_order": get_order,
    "get_timeout": get_timeout,
    "wait": wait_forms,
    "chain": chain,
    "errors": errors,
    "retries": retries,
    "actors": actors,
    "generators": generators,
    "queued": queued,
    "cancel": cancel,
    "limits": limits,
    "placement": placement,
    "lifetime": lifetime,
    "prepared": prepared,
}

for case in sys.argv[1:]:
    print(f"== {case}")
    CASES[case]()
