//! Jobs: a driver component run on the server, as `prism run` runs one
//! locally, its output kept in a log file that can be followed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, oneshot};

use crate::Service;
use crate::api::read_json_body;
use crate::http::{ApiError, Reply, json_response};
use crate::space::{JobRecord, Space};
use crate::tenants::{Tenant, hex};
use prism_exec::DriverExit;
use prism_exec::Output;

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// `POST /v1/jobs`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJob {
    module: String,
    #[serde(default)]
    args: Vec<String>,
}

/// A job's log file, holding at most the tenant's `job_log_bytes`. Lines
/// are counted here, on the guest's thread, and written by a task of their
/// own on tokio's blocking pool: a slow disk never holds an async thread.
struct JobLog {
    lines: mpsc::UnboundedSender<Line>,
    written: u64,
    quota: u64,
}

/// What the log's writer is handed.
enum Line {
    Bytes(Vec<u8>),
    /// Answered once everything handed before is written.
    Flush(oneshot::Sender<()>),
}

impl JobLog {
    /// Starts the writer of `file`.
    fn start(file: std::fs::File, quota: u64) -> JobLog {
        let (lines, mut queue) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut file = tokio::fs::File::from_std(file);
            while let Some(line) = queue.recv().await {
                match line {
                    Line::Bytes(bytes) => {
                        if let Err(err) = file.write_all(&bytes).await {
                            tracing::warn!(error = %err, "cannot write a job's log");
                        }
                    }
                    Line::Flush(done) => {
                        let _ = file.flush().await;
                        let _ = done.send(());
                    }
                }
            }
        });
        JobLog { lines, written: 0, quota }
    }

    /// Appends `bytes` (whole lines); the first lines past the quota are
    /// replaced by one saying so, and later ones dropped. What is queued
    /// is within the quota, so the queue is bounded by it too.
    fn write(&mut self, bytes: &[u8]) {
        if self.written > self.quota {
            return;
        }
        self.written += bytes.len() as u64;
        let line = if self.written <= self.quota {
            bytes.to_vec()
        } else {
            format!(
                "prism: this job's output reached its quota of {} bytes (the tenant quota `job_log_bytes`); \
                 the rest is dropped\n",
                self.quota
            )
            .into_bytes()
        };
        let _ = self.lines.send(Line::Bytes(line));
    }

    /// Waits until everything written before is in the file.
    fn flushed(log: &Mutex<JobLog>) -> impl Future<Output = ()> + use<> {
        let (done, flushed) = oneshot::channel();
        let _ = log.lock().lines.send(Line::Flush(done));
        async move {
            let _ = flushed.await;
        }
    }
}

/// Starts a job; answers with its record.
pub async fn submit(
    service: &Arc<Service>,
    tenant: &Tenant,
    space: &Arc<Space>,
    request: hyper::Request<Incoming>,
) -> Reply {
    let body = read_json_body(request.into_body(), tenant).await?;
    let new: NewJob = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the job is not valid JSON of the expected shape: {e}")))?;
    let module = space.module(&new.module).await?;
    if !module.info.driver {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_driver",
            format!(
                "module `{}` cannot run as a job: it does not export `wasi:cli/run` (build it as a binary with `fn main`)",
                module.info.name
            ),
        ));
    }
    let in_flight = crate::api::begin_call(tenant, space)?;
    let id = hex(&rand::random::<[u8; 8]>());
    let log = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(space.log_path(&id))
        .map_err(ApiError::internal)?;
    let log = Arc::new(Mutex::new(JobLog::start(log, tenant.quotas.job_log_bytes)));
    let output = {
        let log = log.clone();
        Output::new(move |_, bytes| log.lock().write(bytes))
    };
    let record = JobRecord {
        id: id.clone(),
        module: module.info.id.clone(),
        args: new.args.clone(),
        state: "running".into(),
        exit_code: None,
        error: None,
    };
    space.save_job(&record).await?;
    let job = space.node.job(module.job.program.clone(), output);
    // Held until the job is in `running`, so that its end finds it there.
    let ends = space.job_ends.lock().await;
    let task = {
        let (space, service, id) = (space.clone(), service.clone(), id.clone());
        let mut record = record.clone();
        tokio::spawn(async move {
            let exit = space.node.run_driver(&job, &new.args).await;
            drop(in_flight);
            // Its output is in the file before its end is saved: a follower
            // that sees the end has read everything.
            JobLog::flushed(&log).await;
            match exit {
                Ok(DriverExit::Exited(code)) => {
                    record.state = if code == 0 { "succeeded" } else { "failed" }.into();
                    record.exit_code = Some(code);
                }
                Ok(DriverExit::Trapped(trap)) => {
                    record.state = "failed".into();
                    record.error = Some(format!("the driver trapped: {trap}"));
                }
                Err(err) => {
                    record.state = "failed".into();
                    record.error = Some(format!("{:#}", anyhow::Error::from(err)));
                }
            }
            let _ends = space.job_ends.lock().await;
            // A stop that came first wrote the end.
            if !space.running.lock().contains_key(&id) {
                return;
            }
            service.metrics.job_ended(&space.tenant, &record.state);
            if let Err(err) = space.save_job(&record).await {
                tracing::error!(job = %id, error = %err.message, "cannot save the job's end");
            }
            space.running.lock().remove(&id);
        })
    };
    space.running.lock().insert(id.clone(), task.abort_handle());
    drop(ends);
    Ok(json_response(StatusCode::CREATED, &record))
}

/// Stops job `id` if it runs.
pub async fn stop(space: &Space, id: &str) -> Reply {
    space.job(id).await?;
    let _ends = space.job_ends.lock().await;
    // Read under the lock: a job that just ended has its end saved.
    let mut record = space.job(id).await?;
    let running = space.running.lock().remove(id);
    if let Some(handle) = running {
        handle.abort();
        record.state = "stopped".into();
        record.error = Some("stopped by request".into());
        space.save_job(&record).await?;
    }
    Ok(json_response(StatusCode::OK, &json!(record)))
}

/// Job `id`'s output so far; with `follow`, streamed until the job ends.
pub async fn logs(space: &Arc<Space>, id: &str, follow: bool) -> Reply {
    space.job(id).await?;
    let path = space.log_path(id);
    let file = tokio::fs::File::open(&path).await.map_err(ApiError::internal)?;
    let (space, id) = (space.clone(), id.to_string());
    let stream = futures::stream::unfold(Some(file), move |file| {
        let (space, id) = (space.clone(), id.clone());
        async move {
            use tokio::io::AsyncReadExt as _;
            let mut file = file?;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) if follow && space.running.lock().contains_key(&id) => tokio::time::sleep(FOLLOW_POLL).await,
                    Ok(0) => {
                        // Ended: whatever was written before the end is read next.
                        let n = file.read(&mut buf).await.unwrap_or(0);
                        return (n > 0).then(|| (Ok(Frame::data(Bytes::copy_from_slice(&buf[..n]))), None));
                    }
                    Ok(n) => return Some((Ok(Frame::data(Bytes::copy_from_slice(&buf[..n]))), Some(file))),
                    Err(e) => return Some((Err(e), None)),
                }
            }
        }
    });
    let mut response = Response::new(http_body_util::StreamBody::new(stream).boxed());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}
