//! `/metrics` in Prometheus' text format: requests and their latency,
//! tasks by tenant, instances, objects and bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::StatusCode;
use parking_lot::Mutex;

use crate::Service;

/// Upper bounds of the request latency histogram, in seconds: fine below
/// 10 ms, where invocations are, coarse above.
const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// What the server counts besides what its namespaces count.
#[derive(Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    jobs: Mutex<BTreeMap<(String, String), u64>>,
}

impl Metrics {
    /// Counts a request answered with `status` after `elapsed`.
    pub fn request(&self, status: StatusCode, elapsed: Duration) {
        *self.by_status.lock().entry(status.as_u16()).or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a job of `tenant` that ended in `state`.
    pub fn job_ended(&self, tenant: &str, state: &str) {
        *self.jobs.lock().entry((tenant.to_string(), state.to_string())).or_default() += 1;
    }
}

impl Service {
    /// The metrics as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let mut out = String::new();
        out.push_str("# HELP prism_http_requests_total HTTP requests answered, by status.\n# TYPE prism_http_requests_total counter\n");
        for (status, n) in m.by_status.lock().iter() {
            let _ = writeln!(out, "prism_http_requests_total{{status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP prism_http_request_duration_seconds Time to answer a request.\n# TYPE prism_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&m.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "prism_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = m.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "prism_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "prism_http_request_duration_seconds_sum {sum}\nprism_http_request_duration_seconds_count {count}"
        );
        out.push_str("# HELP prism_tasks_total Tasks by tenant and outcome.\n# TYPE prism_tasks_total counter\n");
        let spaces = self.open_spaces();
        for space in &spaces {
            let tasks = &space.node.tasks;
            for (event, n) in [("started", &tasks.started), ("finished", &tasks.finished), ("failed", &tasks.failed)] {
                let _ = writeln!(
                    out,
                    "prism_tasks_total{{tenant=\"{}\",event=\"{event}\"}} {}",
                    space.tenant,
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str(
            "# HELP prism_jobs_ended_total Jobs by tenant and how they ended.\n# TYPE prism_jobs_ended_total counter\n",
        );
        for ((tenant, state), n) in m.jobs.lock().iter() {
            let _ = writeln!(out, "prism_jobs_ended_total{{tenant=\"{tenant}\",state=\"{state}\"}} {n}");
        }
        out.push_str("# HELP prism_objects Objects in memory, by tenant.\n# TYPE prism_objects gauge\n");
        for space in &spaces {
            let _ = writeln!(out, "prism_objects{{tenant=\"{}\"}} {}", space.tenant, space.node.store.len());
        }
        out.push_str(
            "# HELP prism_object_bytes Bytes of objects kept, by tenant and tier.\n# TYPE prism_object_bytes gauge\n",
        );
        for space in &spaces {
            let (memory, total) = space.node.store.usage();
            let _ = writeln!(out, "prism_object_bytes{{tenant=\"{}\",tier=\"memory\"}} {memory}", space.tenant);
            let _ = writeln!(out, "prism_object_bytes{{tenant=\"{}\",tier=\"all\"}} {total}", space.tenant);
        }
        let _ = writeln!(
            out,
            "# HELP prism_instances Wasm instances alive.\n# TYPE prism_instances gauge\nprism_instances {}",
            self.host.instances()
        );
        out
    }
}
