//! `prism bench`: Ray's microbenchmark cases (ray/_private/ray_perf.py, as
//! ../shared/tools/ray_bench.py runs them), by Ray's names and units.
//!
//! Arguments: seconds per run, then name filters.

use std::time::Instant;

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
    bench.timeit("single_client_tasks_and_get_batch", 1.0, "batches/s", || {
        let refs: Vec<_> = (0..1000).map(|_| small_value::remote()).collect();
        prism::get_all(&refs).unwrap();
    });
    bench.timeit("single_client_wait_1k_refs", 1.0, "ops/s", || {
        let mut not_ready: Vec<ObjectRef<Bytes>> = (0..1000).map(|_| small_value::remote()).collect();
        for _ in 0..1000 {
            not_ready = prism::wait(&not_ready, 1, None).unwrap().1;
        }
    });
    bench.timeit("single_client_tasks_sync", 1.0, "ops/s", || {
        prism::get(&small_value::remote()).unwrap();
    });
    bench.timeit("single_client_tasks_async", 1000.0, "ops/s", || {
        let refs: Vec<_> = (0..1000).map(|_| small_value::remote()).collect();
        prism::get_all(&refs).unwrap();
    });
    if bench.wants("actor") {
        actors(&bench);
    }
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
