//! `prism bench`: Ray's microbenchmark cases (ray/_private/ray_perf.py, as
//! ../shared/tools/ray_bench.py runs them), by Ray's names and units.
//!
//! Arguments: seconds per run, then name filters.

use std::time::{Duration, Instant};

use prism::wit::prism::core::bytes;
use prism::{Actor, Bytes, ObjectRef, Options};

#[prism::remote]
fn small_value() -> Bytes {
    Bytes::from(b"ok".to_vec())
}

/// One client of `multi_client_tasks_async`: 1000 tasks in flight.
#[prism::remote]
fn client_batch(n: u32) -> u32 {
    let refs: Vec<_> = (0..n).map(|_| small_value::remote()).collect();
    prism::get_all(&refs).unwrap().len() as u32
}

/// Ray's benchmark `Actor`: methods that return a small value.
#[prism::actor]
struct Server;

#[prism::actor]
impl Server {
    fn new() -> Self {
        Server
    }

    fn small_value(&self) -> Bytes {
        Bytes::from(b"ok".to_vec())
    }

    fn small_value_arg(&self, _x: i64) -> Bytes {
        Bytes::from(b"ok".to_vec())
    }
}

/// Ray's benchmark `Client`: an actor calling its servers.
#[prism::actor]
struct Client {
    servers: Vec<Actor<Server>>,
}

#[prism::actor]
impl Client {
    fn new(servers: Vec<Actor<Server>>) -> Self {
        Client { servers }
    }

    fn small_value_batch(&self, n: u32) -> usize {
        let refs: Vec<_> = self.servers.iter().flat_map(|s| (0..n).map(|_| s.small_value().remote())).collect();
        prism::get_all(&refs).unwrap().len()
    }

    fn small_value_batch_arg(&self, n: u32) -> usize {
        let x = prism::put(&0i64).unwrap();
        let refs: Vec<_> = self.servers.iter().flat_map(|s| (0..n).map(|_| s.small_value_arg(&x).remote())).collect();
        prism::get_all(&refs).unwrap().len()
    }
}

/// One caller of `1_1_actor_calls_concurrent`.
#[prism::remote]
fn call_server(server: Actor<Server>, n: u32) -> usize {
    let refs: Vec<_> = (0..n).map(|_| server.small_value().remote()).collect();
    prism::get_all(&refs).unwrap().len()
}

struct Bench {
    seconds: f64,
    filters: Vec<String>,
}

impl Bench {
    fn wants(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Whether some benchmark whose name contains `part` may be wanted: a
    /// filter naming one (`1_1_actor_calls_sync` for `actor`) or part of `part`.
    fn wants_some(&self, part: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| f.contains(part) || part.contains(f.as_str()))
    }

    /// Ray's `timeit`: a warm-up, then the median rate of three timed runs.
    fn timeit(&self, name: &str, multiplier: f64, unit: &str, mut f: impl FnMut()) {
        if !self.wants(name) {
            return;
        }
        f();
        let mut rates = Vec::new();
        for _ in 0..3 {
            let (mut n, start) = (0u64, Instant::now());
            while start.elapsed().as_secs_f64() < self.seconds {
                f();
                n += 1;
            }
            rates.push(n as f64 * multiplier / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        println!("{name} {:.2} {unit}", rates[1]);
    }

    /// Time of one call of `f` in microseconds: the median of `runs`.
    fn latency(&self, name: &str, runs: usize, mut f: impl FnMut()) {
        if !self.wants(name) {
            return;
        }
        f();
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("{name} {:.2} µs", times[runs / 2]);
    }
}

/// Counts the tasks holding a mapping, so a gate can open once all do.
#[prism::actor]
struct Arrivals {
    count: u32,
}

#[prism::actor]
impl Arrivals {
    fn new() -> Self {
        Arrivals { count: 0 }
    }

    fn arrive(&mut self) {
        self.count += 1;
    }

    fn count(&self) -> u32 {
        self.count
    }
}

/// Returns once `n` tasks have arrived.
#[prism::remote]
fn gate(arrivals: Actor<Arrivals>, n: u32) {
    while prism::get(&arrivals.count().remote()).unwrap() < n {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Reads all of `data` (mapped), then holds the mapping until `gate` opens.
#[prism::remote]
fn hold_mapped(data: prism::View, arrivals: Actor<Arrivals>, gate: ObjectRef<()>) -> u64 {
    let sum = data.cast::<u64>().unwrap().iter().fold(0u64, |a, b| a.wrapping_add(*b));
    prism::get(&arrivals.arrive().remote()).unwrap();
    prism::get(&gate).unwrap();
    sum
}

/// `map_shared_256mib_xN`: N tasks map one 256 MiB object and read all of
/// it at the same time. Run with `prism bench --memory` to see the peak.
fn shared_mapping(bench: &Bench) {
    for n in [1u32, 100] {
        let name = format!("map_shared_256mib_x{n}");
        if !bench.filters.contains(&name) {
            continue;
        }
        let r = prism::put_bytes(&vec![1u8; 256 << 20]).unwrap();
        let arrivals = Arrivals::remote();
        let no_cpu = Options::new().num_cpus(0);
        bench.latency(&name, 1, || {
            let arrived = prism::get(&arrivals.count().remote()).unwrap();
            let open = gate::remote_with(&no_cpu, arrivals.clone(), arrived + n);
            let refs: Vec<_> = (0..n).map(|_| hold_mapped::remote(&r, arrivals.clone(), open.clone())).collect();
            prism::get_all(&refs).unwrap();
        });
    }
}

/// Ten 100 MB values, yielded one at a time.
#[prism::remote]
fn hundred_mb_values(n: u8) -> impl Iterator<Item = Bytes> {
    (0..n).map(|i| Bytes::from(vec![i; 100_000_000]))
}

/// `generator_10x100mb`: read ten 100 MB values from a generator as they
/// come. Run with `prism bench --memory` to see that the peak is about one
/// value (the producer's) plus one mapping (the reader's), not ten.
fn generator(bench: &Bench) {
    if !bench.filters.iter().any(|f| f == "generator_10x100mb") {
        return;
    }
    bench.latency("generator_10x100mb", 1, || {
        for (i, r) in hundred_mb_values::remote(10).enumerate() {
            let value = prism::get_bytes(&r).unwrap();
            assert!(value.iter().all(|b| *b == i as u8));
        }
    });
}

/// Its length: mapped, no page of it is read.
#[prism::remote]
fn length(data: prism::View) -> u64 {
    data.len() as u64
}

/// Ray's cluster cases (../shared/tools/ray_cluster_bench.py), for
/// `prism bench --cluster URL cross_node`: every task runs on another
/// node. Only when named.
fn cross_node(bench: &Bench) {
    if !bench.filters.iter().any(|f| f.starts_with("cross_node")) {
        return;
    }
    let no_cpu = Options::new().num_cpus(0);
    bench.timeit("cross_node_tasks_sync", 1.0, "ops/s", || {
        prism::get(&small_value::remote_with(&no_cpu)).unwrap();
    });
    bench.timeit("cross_node_tasks_async", 1000.0, "ops/s", || {
        let refs: Vec<_> = (0..1000).map(|_| small_value::remote_with(&no_cpu)).collect();
        prism::get_all(&refs).unwrap();
    });
    if bench.wants("cross_node_round_trip") {
        prism::get(&small_value::remote_with(&no_cpu)).unwrap();
        let mut times: Vec<f64> = (0..500)
            .map(|_| {
                let start = Instant::now();
                prism::get(&small_value::remote_with(&no_cpu)).unwrap();
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("cross_node_round_trip_p50 {:.1} us", times[times.len() / 2]);
        println!("cross_node_round_trip_p99 {:.1} us", times[times.len() * 99 / 100]);
    }
    if bench.wants("cross_node_transfer_1gib") {
        // A new object each time, in every run (ids are content hashes, and
        // a node keeps what it pulled for a while): pulled by the node that
        // runs `length`, checked against its blake3, mapped there.
        // Every node compiles this component first, not inside the timing.
        let warm: Vec<_> = (0..32).map(|_| small_value::remote_with(&no_cpu)).collect();
        prism::get_all(&warm).unwrap();
        let mut data: Vec<u8> = (0..1usize << 30).map(|i| (i % 251) as u8).collect();
        let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        data[8..16].copy_from_slice(&salt.to_le_bytes());
        let best = (0..3u8)
            .map(|i| {
                data[0] = i;
                let r = prism::put_bytes(&data).unwrap();
                // The driver's store writes the new 1 GiB file and syncs it
                // in the background (about 1 s on this disk); a transfer
                // timed meanwhile shares the cpus with that. Ray's `put`
                // writes shared memory, no disk: time the transfer alone.
                std::thread::sleep(Duration::from_secs(3));
                let start = Instant::now();
                assert_eq!(prism::get(&length::remote_with(&no_cpu, &r)).unwrap(), 1 << 30);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!("cross_node_transfer_1gib {:.2} GB/s", (1u64 << 30) as f64 / best / 1e9);
    }
}

/// `get` of large objects into this guest, mapped and copied, by size: the
/// mapped one is O(1); the copied one moves every byte twice.
fn large_gets(bench: &Bench) {
    for (label, size) in [("128kib", 128usize << 10), ("1mib", 1 << 20), ("64mib", 64 << 20), ("1gib", 1 << 30)] {
        let (mapped, copied) = (format!("get_mapped_{label}"), format!("get_copied_{label}"));
        if !bench.wants(&mapped) && !bench.wants(&copied) && !bench.wants(&format!("sum_mapped_{label}")) {
            continue;
        }
        let r = {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            prism::put_bytes(&data).unwrap()
        };
        let runs = if size >= 1 << 30 { 5 } else { 21 };
        bench.latency(&mapped, runs, || {
            let view = prism::get_bytes(&r).unwrap();
            assert!(view.is_mapped());
        });
        bench.latency(&copied, runs, || {
            std::hint::black_box(bytes::read(prism::wit::words(r.id())).unwrap());
        });
        // Reading a mapped object: every page faulted in from the page cache.
        bench.timeit(&format!("sum_mapped_{label}"), size as f64 / 1e9, "GB/s", || {
            let view = prism::get_bytes(&r).unwrap();
            std::hint::black_box(view.cast::<u64>().unwrap().iter().fold(0u64, |a, b| a.wrapping_add(*b)));
        });
    }
    if bench.wants("sum_local_1gib") {
        // The same sum over this guest's own memory: memory speed.
        let data: Vec<u64> = (0..1u64 << 27).collect();
        bench.timeit("sum_local_1gib", (1u64 << 30) as f64 / 1e9, "GB/s", || {
            std::hint::black_box(data.iter().fold(0u64, |a, b| a.wrapping_add(*b)));
        });
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let bench = Bench { seconds, filters: args.collect() };

    let value = prism::put(&0i64).unwrap();
    bench.timeit("single_client_get_calls", 1.0, "ops/s", || {
        prism::get(&value).unwrap();
    });
    bench.timeit("single_client_put_calls", 1.0, "ops/s", || {
        prism::put(&0i64).unwrap();
    });
    if bench.wants("single_client_put_gigabytes") {
        // Ray's case: an 800 MB array of zeros (np.zeros(100M, int64)).
        let arr = vec![0u8; 800 * 1000 * 1000];
        bench.timeit("single_client_put_gigabytes", 0.8, "GB/s", || {
            prism::put_bytes(&arr).unwrap();
        });
    }
    if bench.wants("single_client_get_object_containing_10k_refs") {
        // Ray's case: `ray.get` of an object holding 10,000 refs (to `put`s of 1).
        let refs: Vec<ObjectRef<i64>> = (0..10_000).map(|_| prism::put(&1i64).unwrap()).collect();
        let containing = prism::put(&refs).unwrap();
        bench.timeit("single_client_get_object_containing_10k_refs", 1.0, "ops/s", || {
            std::hint::black_box(prism::get(&containing).unwrap());
        });
    }
    bench.timeit("single_client_tasks_and_get_batch", 1.0, "batches/s", || {
        let refs: Vec<_> = (0..1000).map(|_| small_value::remote()).collect();
        prism::get_all(&refs).unwrap();
    });
    bench.timeit("single_client_wait_1k_refs", 1.0, "ops/s", || {
        let mut not_ready: Vec<ObjectRef<Bytes>> = (0..1000).map(|_| small_value::remote()).collect();
        for _ in 0..1000 {
            not_ready = prism::wait_with(&not_ready, 1, None).unwrap().1;
        }
    });
    bench.timeit("single_client_tasks_sync", 1.0, "ops/s", || {
        prism::get(&small_value::remote()).unwrap();
    });
    bench.timeit("single_client_tasks_async", 1000.0, "ops/s", || {
        let refs: Vec<_> = (0..1000).map(|_| small_value::remote()).collect();
        prism::get_all(&refs).unwrap();
    });
    if bench.wants_some("actor") {
        actors(&bench);
    }
    large_gets(&bench);
    cross_node(&bench);
    shared_mapping(&bench);
    generator(&bench);
    // Ray runs several driver processes; here, clients are tasks holding no cpu.
    let clients = 4;
    bench.timeit("multi_client_tasks_async", (clients * 1000) as f64, "ops/s", || {
        let refs: Vec<_> = (0..clients).map(|_| client_batch::remote_with(&Options::new().num_cpus(0), 1000)).collect();
        prism::get_all(&refs).unwrap();
    });
}

fn actors(bench: &Bench) {
    let a = Server::remote();
    bench.timeit("1_1_actor_calls_sync", 1.0, "ops/s", || {
        prism::get(&a.small_value().remote()).unwrap();
    });
    bench.timeit("1_1_actor_calls_async", 1000.0, "ops/s", || {
        let refs: Vec<_> = (0..1000).map(|_| a.small_value().remote()).collect();
        prism::get_all(&refs).unwrap();
    });
    // Four callers (tasks holding no cpu) share one actor.
    let no_cpu = Options::new().num_cpus(0);
    bench.timeit("1_1_actor_calls_concurrent", 1000.0, "ops/s", || {
        let refs: Vec<_> = (0..4).map(|_| call_server::remote_with(&no_cpu, a.clone(), 250)).collect();
        prism::get_all(&refs).unwrap();
    });
    let many: Vec<_> = (0..4).map(|_| Server::remote()).collect();
    bench.timeit("1_n_actor_calls_async", 1000.0, "ops/s", || {
        let refs: Vec<_> = (0..1000).map(|i| many[i % many.len()].small_value().remote()).collect();
        prism::get_all(&refs).unwrap();
    });
    let (n, m) = (1000, 2);
    let clients: Vec<_> = (0..m).map(|_| Client::remote(vec![Server::remote()])).collect();
    bench.timeit("n_n_actor_calls_async", f64::from(n * m), "ops/s", || {
        let refs: Vec<_> = clients.iter().map(|c| c.small_value_batch(n).remote()).collect();
        prism::get_all(&refs).unwrap();
    });
    bench.timeit("n_n_actor_calls_with_arg_async", f64::from(n * m), "ops/s", || {
        let refs: Vec<_> = clients.iter().map(|c| c.small_value_batch_arg(n).remote()).collect();
        prism::get_all(&refs).unwrap();
    });
}
