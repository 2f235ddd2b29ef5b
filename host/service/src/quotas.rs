//! What one tenant may use. Every quota has a default the server is started
//! with; the admin overrides it per tenant (`prism tenant quota`).

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One tenant's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Invocations, actor calls and jobs in flight at once.
    pub concurrent_tasks: u32,
    /// Actors alive at once (each holds an instance slot while it lives).
    pub actors: u32,
    /// Linear memory of each instance, in bytes.
    pub memory_per_instance: u64,
    /// CPU time of each task call, in milliseconds.
    pub cpu_deadline_ms: u64,
    /// CPU time of each job's driver, in milliseconds.
    pub job_cpu_ms: u64,
    /// Bytes of each job's log; output past it is dropped.
    pub job_log_bytes: u64,
    /// Bytes of objects kept (in memory and in files).
    pub stored_bytes: u64,
    /// The largest request body (module, object upload, arguments), in bytes.
    pub upload_bytes: u64,
    /// Requests per second, averaged over one second (bursts up to this many).
    pub requests_per_second: u32,
}

impl Default for Quotas {
    /// Enough for real work by one team, small enough that one tenant
    /// cannot take a shared node's disk, memory or cpus from the others.
    fn default() -> Self {
        Quotas {
            concurrent_tasks: 256,
            actors: 100,
            memory_per_instance: 256 << 20,
            cpu_deadline_ms: 10_000,
            job_cpu_ms: 3_600_000,
            job_log_bytes: 64 << 20,
            stored_bytes: 10 << 30,
            upload_bytes: 256 << 20,
            requests_per_second: 10_000,
        }
    }
}

/// Per-tenant replacements of some defaults; what redb keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `concurrent_tasks`.
    pub concurrent_tasks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `actors`.
    pub actors: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `memory_per_instance`.
    pub memory_per_instance: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `cpu_deadline_ms`.
    pub cpu_deadline_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `job_cpu_ms`.
    pub job_cpu_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `job_log_bytes`.
    pub job_log_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `stored_bytes`.
    pub stored_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `upload_bytes`.
    pub upload_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Replaces the default `requests_per_second`.
    pub requests_per_second: Option<u32>,
}

impl Overrides {
    /// `defaults` with these overrides applied.
    pub fn apply(&self, defaults: &Quotas) -> Quotas {
        Quotas {
            concurrent_tasks: self.concurrent_tasks.unwrap_or(defaults.concurrent_tasks),
            actors: self.actors.unwrap_or(defaults.actors),
            memory_per_instance: self.memory_per_instance.unwrap_or(defaults.memory_per_instance),
            cpu_deadline_ms: self.cpu_deadline_ms.unwrap_or(defaults.cpu_deadline_ms),
            job_cpu_ms: self.job_cpu_ms.unwrap_or(defaults.job_cpu_ms),
            job_log_bytes: self.job_log_bytes.unwrap_or(defaults.job_log_bytes),
            stored_bytes: self.stored_bytes.unwrap_or(defaults.stored_bytes),
            upload_bytes: self.upload_bytes.unwrap_or(defaults.upload_bytes),
            requests_per_second: self.requests_per_second.unwrap_or(defaults.requests_per_second),
        }
    }

    /// `other`'s overrides laid over these.
    pub fn merge(&self, other: &Overrides) -> Overrides {
        Overrides {
            concurrent_tasks: other.concurrent_tasks.or(self.concurrent_tasks),
            actors: other.actors.or(self.actors),
            memory_per_instance: other.memory_per_instance.or(self.memory_per_instance),
            cpu_deadline_ms: other.cpu_deadline_ms.or(self.cpu_deadline_ms),
            job_cpu_ms: other.job_cpu_ms.or(self.job_cpu_ms),
            job_log_bytes: other.job_log_bytes.or(self.job_log_bytes),
            stored_bytes: other.stored_bytes.or(self.stored_bytes),
            upload_bytes: other.upload_bytes.or(self.upload_bytes),
            requests_per_second: other.requests_per_second.or(self.requests_per_second),
        }
    }
}

/// A token bucket: `rate` requests a second, bursts of up to `rate`.
pub struct RateLimiter(Mutex<(f64, Instant)>);

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: u32) -> Self {
        RateLimiter(Mutex::new((f64::from(rate), Instant::now())))
    }

    /// Takes one request's token; false when the bucket is empty.
    pub fn admit(&self, rate: u32) -> bool {
        let mut bucket = self.0.lock();
        let (tokens, last) = &mut *bucket;
        let now = Instant::now();
        let refill = now.duration_since(*last).min(Duration::from_secs(1)).as_secs_f64() * f64::from(rate);
        *tokens = (*tokens + refill).min(f64::from(rate));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
