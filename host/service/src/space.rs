//! A tenant's namespace: its object store (a node namespace of its own, so
//! no id of another tenant's can name anything here), its modules, the
//! objects it pinned over HTTP, its actors' definitions, and its jobs.
//!
//! On disk, under `tenants/<name>/`: `objects/` (the store), `compiled/`,
//! `modules/<id>.wasm` with `<id>.json`, `jobs/<id>.log`, and `space.redb`
//! (pins, actor definitions and job records).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context as _;
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::http::ApiError;
use crate::pins::{CALLS, Change, PINS, Pins};
use crate::tenants::hex;
use crate::values;
use prism_exec::ActorOptions;
use prism_exec::Output;
use prism_exec::{Class, Signature};
use prism_node::actors::CreateError;
use prism_node::{Job, Library, Node};
use prism_store::error::{Failure, io_failure};
use prism_store::fsutil::write_atomic;
use prism_store::{ObjectId, RedbFile, redb_failure};

/// Actors created over HTTP: id → JSON of [`ActorRecord`]; restarted
/// (constructor re-run, same id and name) when the namespace opens.
const ACTORS: TableDefinition<&str, &[u8]> = TableDefinition::new("actors");

/// Jobs: id → JSON of [`JobRecord`].
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");

/// What the API says about a module.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// blake3 of its bytes, in hex.
    pub id: String,
    /// The name it was uploaded with.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Functions it runs as tasks, with their signatures.
    pub functions: Vec<Signature>,
    /// Actor classes it defines, with their constructors' parameters and
    /// their methods' signatures.
    pub classes: Vec<Class>,
    /// Whether it can run as a job (exports `wasi:cli/run`).
    pub driver: bool,
}

/// A loaded module and the job its invocations and actors run in (which
/// keeps warm instances between invocations).
pub struct Module {
    /// What it is.
    pub info: ModuleInfo,
    /// Where its tasks and actors run.
    pub job: Arc<Job>,
}

/// How an actor was made, as kept in `space.redb`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorRecord {
    /// The module whose class it is.
    pub module: String,
    /// The class.
    pub class: String,
    /// The constructor's arguments.
    #[serde(default)]
    pub args: Vec<serde_json::Value>,
    /// Its name, if any.
    pub name: Option<String>,
    /// Constructor re-runs allowed after traps.
    #[serde(default, deserialize_with = "whole_number")]
    pub max_restarts: u32,
}

/// A count as JSON may write it, `3` or `3.0` (JSON Schema's integers are
/// both), from 0 to `u32::MAX`.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let n = serde_json::Number::deserialize(deserializer)?;
    let whole = n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
    whole.and_then(|w| u32::try_from(w).ok()).ok_or_else(|| {
        serde::de::Error::custom(format!("invalid value: `{n}`, expected a whole number from 0 to {}", u32::MAX))
    })
}

/// A job's state, as kept in `space.redb`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// The module it runs.
    pub module: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `running`, `succeeded`, `failed` or `stopped`.
    pub state: String,
    /// The driver's exit status, once exited.
    pub exit_code: Option<i32>,
    /// Why it failed, if it trapped or could not start.
    pub error: Option<String>,
}

/// One tenant's namespace.
pub struct Space {
    /// The tenant.
    pub tenant: String,
    /// Its node namespace.
    pub node: Arc<Node>,
    dir: PathBuf,
    db: Arc<RedbFile>,
    pins: Pins,
    /// Every module's description, by id (read from disk at open), shared
    /// with the node's [`Modules`] library.
    catalog: Arc<Catalog>,
    /// Modules loaded since, by id.
    modules: Mutex<HashMap<String, Arc<Module>>>,
    /// Invocations, actor calls and jobs in flight.
    pub in_flight: AtomicU32,
    /// Running jobs' stop switches; a job leaves it once its end is saved,
    /// so a follower that sees it gone reads the final record.
    pub running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Held while a job's end (or stop) is written, so exactly one is.
    pub job_ends: tokio::sync::Mutex<()>,
}

impl Space {
    /// Opens the namespace of `tenant` on `node`: takes back the pins of
    /// its objects.
    pub fn open(tenant: &str, node: Arc<Node>) -> anyhow::Result<Arc<Space>> {
        let dir = node.config.data_dir.clone();
        std::fs::create_dir_all(dir.join("modules"))?;
        std::fs::create_dir_all(dir.join("jobs"))?;
        let db = Arc::new(RedbFile::open(&dir.join("space.redb"))?);
        let (pins, calls) = db.write(Self::recover)?;
        let mut catalog = HashMap::new();
        for entry in std::fs::read_dir(dir.join("modules"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let info = read_info(&path)?;
                catalog.insert(info.id.clone(), info);
            }
        }
        for id in pins {
            if node.store.retain(&id) {
                continue;
            }
            match calls.get(&id) {
                Some(function) => node.store.insert_failed(
                    id,
                    Failure::task(function, "the server stopped before the call finished; call it again"),
                ),
                None => tracing::warn!(tenant, %id, "a pinned object is gone"),
            }
        }
        if !calls.is_empty() {
            // Those failures are on disk before the calls are forgotten.
            node.store.flush()?;
            db.write(|db| {
                let txn = db.begin_write()?;
                txn.delete_table(CALLS)?;
                anyhow::Ok(txn.commit()?)
            })?;
        }
        let catalog = Arc::new(Mutex::new(catalog));
        node.set_library(Arc::new(Modules { dir: dir.join("modules"), catalog: catalog.clone() }));
        Ok(Arc::new(Space {
            tenant: tenant.to_string(),
            node,
            dir,
            pins: Pins::start(db.clone())?,
            db,
            catalog,
            modules: Mutex::new(HashMap::new()),
            in_flight: AtomicU32::new(0),
            running: Mutex::new(HashMap::new()),
            job_ends: tokio::sync::Mutex::new(()),
        }))
    }

    fn module_path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join("modules").join(format!("{id}.{ext}"))
    }

    /// Takes back the pins and the calls in flight of a namespace last
    /// open before a stop, and marks the jobs it was running as stopped.
    fn recover(db: &Database) -> anyhow::Result<(Vec<ObjectId>, HashMap<ObjectId, String>)> {
        let txn = db.begin_write()?;
        let mut pins = Vec::new();
        let mut calls = HashMap::new();
        {
            let table = txn.open_table(PINS)?;
            for row in table.iter()? {
                pins.push(ObjectId::try_from(row?.0.value()).map_err(anyhow::Error::msg)?);
            }
            for row in txn.open_table(CALLS)?.iter()? {
                let (id, function) = row?;
                calls.insert(ObjectId::try_from(id.value()).map_err(anyhow::Error::msg)?, function.value().to_string());
            }
            txn.open_table(ACTORS)?;
            let mut jobs = txn.open_table(JOBS)?;
            // A job running when the server stopped did not finish.
            let mut ended = Vec::new();
            for row in jobs.iter()? {
                let (id, bytes) = row?;
                let mut record: JobRecord = serde_json::from_slice(bytes.value())?;
                if record.state == "running" {
                    record.state = "stopped".into();
                    record.error = Some("the server stopped while it ran".into());
                    ended.push((id.value().to_string(), serde_json::to_vec(&record)?));
                }
            }
            for (id, bytes) in ended {
                jobs.insert(id.as_str(), bytes.as_slice())?;
            }
        }
        txn.commit()?;
        Ok((pins, calls))
    }

    /// Validates `wasm` as a prism component and keeps it; returns what it is.
    pub async fn add_module(&self, name: &str, wasm: &[u8]) -> Result<ModuleInfo, ApiError> {
        let program = self.node.load(name, wasm).await.map_err(|e| {
            ApiError::new(
                hyper::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_module",
                format!("{:#}", anyhow::Error::from(e)),
            )
        })?;
        let info = ModuleInfo {
            id: hex(&program.hash),
            name: name.to_string(),
            size: wasm.len() as u64,
            functions: program.signatures.clone(),
            classes: program.classes.clone(),
            driver: program.is_command(),
        };
        // The bytes first: a module is listed once its description exists.
        let (wasm_path, json_path) = (self.module_path(&info.id, "wasm"), self.module_path(&info.id, "json"));
        let (wasm, meta) = (wasm.to_vec(), serde_json::to_vec_pretty(&info).map_err(ApiError::internal)?);
        blocking(move || {
            write_atomic(&wasm_path, &wasm).map_err(|e| io_error("cannot keep the module", &e))?;
            write_atomic(&json_path, &meta).map_err(|e| io_error("cannot keep the module", &e))
        })
        .await?;
        self.catalog.lock().insert(info.id.clone(), info.clone());
        Ok(info)
    }

    /// Every module, by name then id.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        let mut out: Vec<_> = self.catalog.lock().values().cloned().collect();
        out.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        out
    }

    /// The module `id` (a hex id, or a unique prefix of one, or its name).
    pub async fn module(&self, id: &str) -> Result<Arc<Module>, ApiError> {
        let id = self.resolve_module(id)?;
        if let Some(module) = self.modules.lock().get(&id) {
            return Ok(module.clone());
        }
        let info =
            self.catalog.lock().get(&id).cloned().ok_or_else(|| ApiError::not_found(format!("no module `{id}`")))?;
        let path = self.module_path(&id, "wasm");
        let wasm = blocking(move || std::fs::read(&path).map_err(|e| io_error("cannot read the module", &e))).await?;
        let program = self.node.load(&info.name, &wasm).await.map_err(ApiError::internal)?;
        let job = self.node.job(program, Output::discard());
        let module = Arc::new(Module { info, job });
        Ok(self.modules.lock().entry(id).or_insert(module).clone())
    }

    /// The id of the module named by `given` ([`resolve`]).
    fn resolve_module(&self, given: &str) -> Result<String, ApiError> {
        resolve(&self.catalog.lock(), given)
    }

    /// Deletes module `id` (instances running it finish first).
    pub fn delete_module(&self, id: &str) -> Result<(), ApiError> {
        let id = self.resolve_module(id)?;
        // The description first: a half-deleted module is not listed.
        std::fs::remove_file(self.module_path(&id, "json")).map_err(ApiError::internal)?;
        let _ = std::fs::remove_file(self.module_path(&id, "wasm"));
        self.catalog.lock().remove(&id);
        self.modules.lock().remove(&id);
        Ok(())
    }

    /// Closes this namespace for good: its jobs stop, its actors die, its
    /// running calls trap.
    pub fn close(&self) {
        for (_, job) in self.running.lock().drain() {
            job.abort();
        }
        self.node.close();
    }

    /// Keeps `id` (whose reference the caller hands over) until unpinned,
    /// across restarts; from a blocking thread.
    pub fn pin_blocking(&self, id: ObjectId) -> Result<(), ApiError> {
        let fresh = self.pins.apply_blocking(Change::Pin(id, None))?;
        self.pinned(id, fresh);
        Ok(())
    }

    /// Pins `id`, the result of a call of `function` still running; until
    /// [`Space::call_done`], a restart fails it.
    pub async fn pin_call(&self, id: ObjectId, function: &str) -> Result<(), ApiError> {
        let fresh = self.pins.apply(Change::Pin(id, Some(function.to_string()))).await?;
        self.pinned(id, fresh);
        Ok(())
    }

    /// A pin holds one reference: the caller's, unless `id` was pinned already.
    fn pinned(&self, id: ObjectId, fresh: bool) {
        if !fresh {
            self.node.store.release(&id);
        }
    }

    /// The call whose result is `id` is done.
    pub async fn call_done(&self, id: ObjectId) {
        if let Err(err) = self.pins.apply(Change::CallDone(id)).await {
            tracing::warn!(tenant = self.tenant, %id, error = %err.message, "cannot forget a finished call");
        }
    }

    /// Lets go of pinned `id`; false if it was not pinned.
    pub async fn unpin(&self, id: &ObjectId) -> Result<bool, ApiError> {
        let was = self.pins.apply(Change::Unpin(*id)).await?;
        if was {
            self.node.store.release(id);
        }
        Ok(was)
    }

    /// Creates an actor as `record` says, with `id` if given; remembers it
    /// so that it is restarted when the namespace next opens.
    pub async fn create_actor(&self, record: &ActorRecord, id: Option<ObjectId>) -> Result<ObjectId, ApiError> {
        let module = self.module(&record.module).await?;
        let args = values::args_from_json(&record.args).map_err(ApiError::bad_request)?;
        let options = ActorOptions {
            name: record.name.clone(),
            detached: true,
            max_restarts: record.max_restarts,
            max_task_retries: 0,
            id,
            placement: Default::default(),
        };
        let id = self
            .node
            .create_actor(&module.job, &module.job.program, None, record.class.clone(), args, options)
            .map_err(|err| match err {
                CreateError::Failed(failure) => crate::api::failure_error(&failure),
                too_many @ CreateError::TooMany { .. } => {
                    ApiError::new(hyper::StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", too_many.to_string())
                }
                full @ CreateError::NodeFull { .. } => {
                    ApiError::new(hyper::StatusCode::SERVICE_UNAVAILABLE, "node_full", full.to_string())
                }
                taken => ApiError::new(hyper::StatusCode::CONFLICT, "conflict", taken.to_string()),
            })?;
        // By id: a name may later be shared by several modules.
        let record = ActorRecord { module: module.info.id.clone(), ..record.clone() };
        let bytes = serde_json::to_vec(&record).map_err(ApiError::internal)?;
        self.change(move |txn| {
            txn.open_table(ACTORS)?.insert(id.to_string().as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    /// Kills actor `id` and forgets how it was made.
    pub async fn kill_actor(&self, id: ObjectId) -> Result<(), ApiError> {
        self.node.kill_actor(id, true).map_err(|_| ApiError::not_found(format!("no actor `{id}`")))?;
        self.change(move |txn| {
            txn.open_table(ACTORS)?.remove(id.to_string().as_str())?;
            Ok(())
        })
        .await
    }

    /// Restarts the actors created over HTTP before the last stop: their
    /// constructors run again with the same arguments, ids and names (their
    /// state was in their instances, as a Ray actor's is lost with its
    /// process). One that cannot be made is logged and forgotten.
    pub async fn restore_actors(&self) -> anyhow::Result<()> {
        let records: Vec<(String, ActorRecord)> = self.db.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ACTORS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (id, bytes) = row?;
                out.push((id.value().to_string(), serde_json::from_slice(bytes.value())?));
            }
            anyhow::Ok(out)
        })?;
        for (id, record) in records {
            let parsed = id.parse().map_err(anyhow::Error::msg)?;
            if let Err(err) = self.create_actor(&record, Some(parsed)).await {
                tracing::warn!(tenant = %self.tenant, actor = %id, error = %err.message, "cannot restore an actor");
                self.change(move |txn| {
                    txn.open_table(ACTORS)?.remove(id.as_str())?;
                    Ok(())
                })
                .await
                .map_err(|err| anyhow::anyhow!(err.message))?;
            }
        }
        Ok(())
    }

    /// Saves `record` (a job started or ended).
    pub async fn save_job(&self, record: &JobRecord) -> Result<(), ApiError> {
        let (id, bytes) = (record.id.clone(), serde_json::to_vec(record).map_err(ApiError::internal)?);
        self.change(move |txn| {
            txn.open_table(JOBS)?.insert(id.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Job `id`.
    pub async fn job(&self, id: &str) -> Result<JobRecord, ApiError> {
        let (db, key) = (self.db.clone(), id.to_string());
        let bytes = blocking(move || {
            db.read(|db| {
                let table = db.begin_read().map_err(db_error)?.open_table(JOBS).map_err(db_error)?;
                Ok::<_, ApiError>(table.get(key.as_str()).map_err(db_error)?.map(|bytes| bytes.value().to_vec()))
            })
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))?;
        serde_json::from_slice(&bytes).map_err(ApiError::internal)
    }

    /// Every job.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, ApiError> {
        let db = self.db.clone();
        blocking(move || {
            db.read(|db| {
                let table = db.begin_read().map_err(db_error)?.open_table(JOBS).map_err(db_error)?;
                let mut out = Vec::new();
                for row in table.iter().map_err(db_error)? {
                    let (_, bytes) = row.map_err(db_error)?;
                    out.push(serde_json::from_slice(bytes.value()).map_err(ApiError::internal)?);
                }
                Ok(out)
            })
        })
        .await
    }

    /// Commits `change` to the namespace's database: a full disk is 507, and
    /// the database is reopened for the next change.
    async fn change(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    ) -> Result<(), ApiError> {
        let db = self.db.clone();
        blocking(move || {
            db.write(|db| {
                let txn = db.begin_write().map_err(db_error)?;
                change(&txn).map_err(db_error)?;
                txn.commit().map_err(db_error)
            })
        })
        .await
    }

    /// Where job `id`'s output goes.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join("jobs").join(format!("{id}.log"))
    }

    /// Counts one more call in flight, unless `limit` are already.
    pub fn begin_call(self: &Arc<Self>, limit: u32) -> Option<InFlight> {
        let mut now = self.in_flight.load(Ordering::Relaxed);
        loop {
            if now >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(InFlight(self.clone())),
                Err(seen) => now = seen,
            }
        }
    }
}

/// One call in flight; counted down when dropped.
pub struct InFlight(Arc<Space>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn read_info(path: &Path) -> anyhow::Result<ModuleInfo> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).with_context(|| format!("module description `{}`", path.display()))
}

/// A tenant's modules, by id.
type Catalog = Mutex<HashMap<String, ModuleInfo>>;

/// The id of the module named by `given`: its id, or its name if exactly
/// one module has that name.
fn resolve(catalog: &HashMap<String, ModuleInfo>, given: &str) -> Result<String, ApiError> {
    let missing = || ApiError::not_found(format!("no module `{given}`"));
    if catalog.contains_key(given) {
        return Ok(given.to_string());
    }
    if given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(missing());
    }
    let mut named: Vec<_> = catalog.values().filter(|m| m.name == given).collect();
    named.sort_by(|a, b| a.id.cmp(&b.id));
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(missing()),
        many => Err(ApiError::new(
            hyper::StatusCode::CONFLICT,
            "ambiguous",
            format!(
                "{} modules are named `{given}`; name one by id: {}",
                many.len(),
                many.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// What a tenant's tasks may call into: its own modules, and no other
/// tenant's (the library of its namespace only).
struct Modules {
    dir: PathBuf,
    catalog: Arc<Catalog>,
}

impl Library for Modules {
    fn find(&self, name: &str) -> Result<[u8; 32], String> {
        let catalog = self.catalog.lock();
        let id = resolve(&catalog, name).map_err(|e| {
            let names: Vec<String> = catalog.values().map(|m| format!("`{}`", m.name)).collect();
            format!(
                "{} (this tenant's modules: {})",
                e.message,
                if names.is_empty() { "none".into() } else { names.join(", ") }
            )
        })?;
        let id: ObjectId = id.parse().map_err(|e| format!("module `{id}`: {e}"))?;
        Ok(*id.as_bytes())
    }

    fn wasm(&self, id: &[u8; 32]) -> Option<(String, Vec<u8>)> {
        let id = hex(id);
        let name = self.catalog.lock().get(&id)?.name.clone();
        let wasm = std::fs::read(self.dir.join(format!("{id}.wasm"))).ok()?;
        Some((name, wasm))
    }
}

/// A failed operation on a namespace's database, as an answer.
pub(crate) fn db_error(err: impl Into<redb::Error>) -> ApiError {
    crate::api::failure_error(&redb_failure("the tenant's database", &err.into()))
}

/// A failed file operation of the namespace, as an answer.
fn io_error(doing: &str, err: &std::io::Error) -> ApiError {
    crate::api::failure_error(&io_failure(doing, err))
}

/// Runs `work`, which waits on the disk, off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}
