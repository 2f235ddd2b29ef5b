# `prism bench --lang python`: Ray's microbenchmark cases (ray/_private/ray_perf.py)
# with a Python guest, by Ray's names and units, as tests/programs/src/bin/bench.rs
# runs them in Rust. Arguments: seconds per run, then name filters.
import sys
import time

import prism


@prism.remote
def small_value():
    return b"ok"


@prism.remote(num_cpus=0)
def client_batch(n):
    return len(prism.get([small_value.remote() for _ in range(n)]))


@prism.remote
class Server:
    def small_value(self):
        return b"ok"

    def small_value_arg(self, x):
        return b"ok"


@prism.remote
class Client:
    def __init__(self, servers):
        self.servers = servers

    def small_value_batch(self, n):
        return len(prism.get([s.small_value.remote() for s in self.servers for _ in range(n)]))

    def small_value_batch_arg(self, n):
        x = prism.put(0)
        return len(prism.get([s.small_value_arg.remote(x) for s in self.servers for _ in range(n)]))


@prism.remote(num_cpus=0)
def call_server(server, n):
    return len(prism.get([server.small_value.remote() for _ in range(n)]))


seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
filters = sys.argv[2:]


def wants(name):
    return not filters or any(f in name for f in filters)


def timeit(name, f, multiplier=1.0, unit="ops/s"):
    """Ray's `timeit`: a warm-up, then the median rate of three timed runs."""
    if not wants(name):
        return
    f()
    rates = []
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            f()
            n += 1
        rates.append(n * multiplier / (time.perf_counter() - start))
    print(f"{name} {sorted(rates)[1]:.2f} {unit}", flush=True)


value = prism.put(0)
timeit("single_client_get_calls", lambda: prism.get(value))
timeit("single_client_put_calls", lambda: prism.put(0))
if wants("single_client_put_gigabytes"):
    # Ray's case: an 800 MB array of zeros.
    arr = bytes(800 * 1000 * 1000)
    timeit("single_client_put_gigabytes", lambda: prism.put(arr), 0.8, "GB/s")
    del arr
if wants("single_client_get_object_containing_10k_refs"):
    containing = prism.put([prism.put(1) for _ in range(10_000)])
    timeit("single_client_get_object_containing_10k_refs", lambda: prism.get(containing))


def tasks_and_get_batch():
    prism.get([small_value.remote() for _ in range(1000)])


timeit("single_client_tasks_and_get_batch", tasks_and_get_batch, 1.0, "batches/s")


def wait_1k_refs():
    not_ready = [small_value.remote() for _ in range(1000)]
    while not_ready:
        _, not_ready = prism.wait(not_ready)


timeit("single_client_wait_1k_refs", wait_1k_refs)
timeit("single_client_tasks_sync", lambda: prism.get(small_value.remote()))
timeit("single_client_tasks_async", tasks_and_get_batch, 1000.0)

if wants("actor") or any("actor" in f for f in filters):
    a = Server.remote()
    timeit("1_1_actor_calls_sync", lambda: prism.get(a.small_value.remote()))
    timeit("1_1_actor_calls_async", lambda: prism.get([a.small_value.remote() for _ in range(1000)]), 1000.0)
    timeit(
        "1_1_actor_calls_concurrent",
        lambda: prism.get([call_server.remote(a, 250) for _ in range(4)]),
        1000.0,
    )
    many = [Server.remote() for _ in range(4)]
    timeit(
        "1_n_actor_calls_async",
        lambda: prism.get([many[i % len(many)].small_value.remote() for i in range(1000)]),
        1000.0,
    )
    n, m = 1000, 2
    clients = [Client.remote([Server.remote()]) for _ in range(m)]
    timeit("n_n_actor_calls_async", lambda: prism.get([c.small_value_batch.remote(n) for c in clients]), n * m)
    timeit(
        "n_n_actor_calls_with_arg_async",
        lambda: prism.get([c.small_value_batch_arg.remote(n) for c in clients]),
        n * m,
    )

# Ray runs several driver processes; here, clients are tasks holding no cpu.
clients = 4
timeit("multi_client_tasks_async", lambda: prism.get([client_batch.remote(1000) for _ in range(clients)]), clients * 1000)
