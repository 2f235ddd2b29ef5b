//! Who is in the cluster: every node puts its [`NodeInfo`] in a JetStream
//! KV bucket at each heartbeat, and everyone watches the bucket. A node not
//! heard from for [`DEAD_AFTER`] is dead to its watchers; no vote is taken,
//! since each caller only needs to stop waiting on it and place work
//! elsewhere. A node that could not heartbeat for that long knows it was
//! declared dead and comes back under a new id (see [`Heartbeat`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures::{StreamExt as _, TryStreamExt as _};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::protocol::{NAMES_BUCKET, NODES_BUCKET, NodeInfo};

/// How often a node puts its info.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// Silence after which a node is dead to the rest.
pub const DEAD_AFTER: Duration = Duration::from_secs(3);

/// Why joining the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The NATS server cannot be reached.
    #[error("cannot reach the cluster's NATS server at `{0}`: {1}")]
    Connect(String, String),
    /// JetStream is off, or a bucket cannot be made.
    #[error("cannot open the `{0}` bucket (is JetStream on? start nats-server with -js): {1}")]
    Bucket(&'static str, String),
}

/// A connection to the cluster's NATS server.
#[derive(Clone)]
pub struct Cluster {
    /// Core NATS, for requests between nodes.
    pub client: async_nats::Client,
    nodes: kv::Store,
    /// The named actors ([`NAMES_BUCKET`]).
    pub names: kv::Store,
}

impl Cluster {
    /// Connects to the NATS server at `url`, making the buckets if needed.
    pub async fn connect(url: &str) -> Result<Cluster, JoinError> {
        let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
        let client = options.connect(url).await.map_err(|e| JoinError::Connect(url.to_string(), e.to_string()))?;
        let jetstream = jetstream::new(client.clone());
        let bucket = async |name: &'static str, config: kv::Config| {
            let config = kv::Config { bucket: name.to_string(), history: 1, ..config };
            jetstream.create_or_update_key_value(config).await.map_err(|e| JoinError::Bucket(name, e.to_string()))
        };
        let nodes = kv::Config {
            // A node killed for good drops out of the listing after this.
            max_age: Duration::from_secs(60),
            storage: jetstream::stream::StorageType::Memory,
            ..Default::default()
        };
        let nodes = bucket(NODES_BUCKET, nodes).await?;
        // On disk: names outlive a restart of the NATS server, as actors do.
        let names = bucket(NAMES_BUCKET, kv::Config::default()).await?;
        Ok(Cluster { client, nodes, names })
    }

    /// Puts `info` now.
    pub async fn announce(&self, info: &NodeInfo) -> Result<(), String> {
        let bytes = rmp_serde::to_vec_named(info).expect("NodeInfo encodes");
        self.nodes.put(&info.id, bytes.into()).await.map(drop).map_err(|e| e.to_string())
    }

    /// Takes `id` out of the listing (a node that stops cleanly). Gives up
    /// after [`HEARTBEAT`] if the NATS server is gone, so a node stops
    /// anyway: the others then find it dead as if it had crashed.
    pub async fn leave(&self, id: &str) {
        let _ = tokio::time::timeout(HEARTBEAT, self.nodes.purge(id)).await;
    }

    /// Every node in the bucket now, and whether it is alive: heard from
    /// within [`DEAD_AFTER`] (by the NATS server's clock against this
    /// machine's).
    pub async fn nodes(&self) -> Result<Vec<(NodeInfo, bool)>, String> {
        // The stream's subjects, not `keys()`: its consumer can miss a key
        // whose entry is replaced (a heartbeat) while it lists.
        let prefix = self.nodes.prefix.as_str();
        let subjects = self.nodes.stream.info_with_subjects(format!("{prefix}>")).await.map_err(|e| e.to_string())?;
        let subjects: Vec<(String, usize)> = subjects.try_collect().await.map_err(|e| e.to_string())?;
        let keys = subjects.into_iter().filter_map(|(subject, _)| subject.strip_prefix(prefix).map(str::to_string));
        let mut nodes = Vec::new();
        for key in keys {
            let Some(entry) = self.nodes.entry(key).await.map_err(|e| e.to_string())? else { continue };
            if let (kv::Operation::Put, Ok(info)) = (entry.operation, rmp_serde::from_slice::<NodeInfo>(&entry.value)) {
                nodes.push((info, age(&entry) < DEAD_AFTER));
            }
        }
        Ok(nodes)
    }

    /// Watches the bucket, from each node's last entry on: the live nodes,
    /// kept up to date until dropped.
    pub async fn watch(&self) -> Result<Members, JoinError> {
        let mut updates =
            self.nodes.watch_with_history(">").await.map_err(|e| JoinError::Bucket(NODES_BUCKET, e.to_string()))?;
        let (changed, _) = watch::channel(0u64);
        let members = Members { state: Arc::new(State { nodes: Mutex::default(), changed }) };
        let state = Arc::downgrade(&members.state);
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(HEARTBEAT / 2);
            loop {
                tokio::select! {
                    update = updates.next() => {
                        let (Some(update), Some(state)) = (update, state.upgrade()) else { return };
                        match update {
                            Ok(entry) => state.record(entry),
                            Err(e) => tracing::warn!("watching the cluster's nodes: {e}"),
                        }
                    }
                    _ = sweep.tick() => {
                        let Some(state) = state.upgrade() else { return };
                        state.sweep();
                    }
                }
            }
        });
        Ok(members)
    }
}

/// The nodes a watcher sees alive.
#[derive(Clone)]
pub struct Members {
    state: Arc<State>,
}

struct State {
    nodes: Mutex<HashMap<String, Member>>,
    /// Bumped whenever a node joins or dies.
    changed: watch::Sender<u64>,
}

struct Member {
    info: NodeInfo,
    seen: Instant,
    alive: bool,
}

impl State {
    fn record(&self, entry: kv::Entry) {
        let mut nodes = self.nodes.lock();
        if entry.operation != kv::Operation::Put {
            if nodes.remove(&entry.key).is_some_and(|m| m.alive) {
                self.changed.send_modify(|n| *n += 1);
            }
            return;
        }
        let Ok(info) = rmp_serde::from_slice::<NodeInfo>(&entry.value) else { return };
        // An old entry (a watcher's first look at the bucket) counts from
        // when it was written, so a node killed a while ago is not alive.
        let age = age(&entry);
        let seen = Instant::now().checked_sub(age.min(DEAD_AFTER * 2)).unwrap_or_else(Instant::now);
        let alive = seen.elapsed() < DEAD_AFTER;
        let was = nodes.insert(entry.key, Member { info, seen, alive }).is_some_and(|m| m.alive);
        if was != alive {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    fn sweep(&self) {
        let mut died = false;
        for member in self.nodes.lock().values_mut() {
            if member.alive && member.seen.elapsed() >= DEAD_AFTER {
                member.alive = false;
                died = true;
                tracing::warn!(node = %member.info.id, "no heartbeat for {DEAD_AFTER:?}: the node is dead");
            }
        }
        if died {
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

impl Members {
    /// The nodes alive now.
    pub fn alive(&self) -> Vec<NodeInfo> {
        self.state.nodes.lock().values().filter(|m| m.alive).map(|m| m.info.clone()).collect()
    }

    /// Every node in the bucket, and whether it is alive.
    pub fn all(&self) -> Vec<(NodeInfo, bool)> {
        self.state.nodes.lock().values().map(|m| (m.info.clone(), m.alive)).collect()
    }

    /// Whether node `id` is alive.
    pub fn is_alive(&self, id: &str) -> bool {
        self.state.nodes.lock().get(id).is_some_and(|m| m.alive)
    }

    /// Resolves once node `id` is not alive.
    pub async fn lost(&self, id: &str) {
        let mut changed = self.state.changed.subscribe();
        while self.is_alive(id) {
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves once at least `n` nodes are alive, or after `timeout`.
    pub async fn at_least(&self, n: usize, timeout: Duration) -> bool {
        let mut changed = self.state.changed.subscribe();
        let until = Instant::now() + timeout;
        while self.alive().len() < n {
            if tokio::time::timeout_at(until, changed.changed()).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// A node's own heartbeat. Its id is new at every start; if the node could
/// not heartbeat for [`DEAD_AFTER`] (its link was cut), the others have
/// declared it dead and retried its work, so it takes a new id and rejoins
/// clean: nothing it did under the old one is heard of again.
pub struct Heartbeat {
    /// The id it is known by now.
    pub id: watch::Receiver<String>,
}

impl Heartbeat {
    /// Starts heartbeating `info()` (whose `id` field it sets) on `cluster`.
    pub fn start(cluster: Cluster, info: impl Fn() -> NodeInfo + Send + 'static) -> Heartbeat {
        let (set, id) = watch::channel(new_id());
        tokio::spawn(async move {
            let mut last = Instant::now();
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                let mut now = info();
                now.id = set.borrow().clone();
                // A put that is slow (a busy machine) still counts once it
                // lands: only one that fails, or takes DEAD_AFTER, misses.
                let put = tokio::time::timeout(DEAD_AFTER, cluster.announce(&now)).await;
                if matches!(put, Ok(Ok(()))) {
                    last = Instant::now();
                    continue;
                }
                if last.elapsed() >= DEAD_AFTER && set.borrow().as_str() == now.id {
                    let fresh = new_id();
                    tracing::warn!(old = %now.id, new = %fresh, "cut off from the cluster long enough to be declared dead: rejoining under a new id");
                    if set.send(fresh).is_err() {
                        return;
                    }
                    last = Instant::now();
                    // A heartbeat stuck in the cut link may still land; the
                    // purge, queued behind it, takes the old id out after it.
                    let (cluster, old) = (cluster.clone(), now.id);
                    tokio::spawn(async move { cluster.leave(&old).await });
                }
            }
        });
        Heartbeat { id }
    }
}

/// A random node id: 16 hex digits.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// How long ago `entry` was written.
fn age(entry: &kv::Entry) -> Duration {
    SystemTime::now().duration_since(SystemTime::from(entry.created)).unwrap_or_default()
}
