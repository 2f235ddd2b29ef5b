//! `prism bench`: Ray's microbenchmark cases (ray/_private/ray_perf.py, as
//! ../shared/tools/ray_bench.py runs them), by Ray's names and units.
//!
//! Arguments: seconds per run, then name filters.

use std::time::Instant;

use prism::{Bytes, ObjectRef, Options};

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
    // Ray runs several driver processes; here, clients are tasks holding no cpu.
    let clients = 4;
    bench.timeit("multi_client_tasks_async", (clients * 1000) as f64, "ops/s", || {
        let refs: Vec<_> = (0..clients).map(|_| client_batch::remote_with(&Options::new().num_cpus(0), 1000)).collect();
        prism::get_all(&refs).unwrap();
    });
}
