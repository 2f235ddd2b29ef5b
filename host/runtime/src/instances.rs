//! The node's instance slots: one per instance the pooling allocator can
//! hold, owned here alone, with one cap across every namespace. A running
//! call, an actor, a driver, the instance a load lists functions in, and an
//! idle warm instance each hold one.
//!
//! Warm instances are kept only while nobody needs their slot. A call that
//! finds no free slot evicts one (of the namespace holding the most slots,
//! its least recently used), and an instance coming back idle while someone
//! waits is dropped rather than kept. A slot freed while several wait goes
//! to the waiting namespace holding the fewest, so one tenant's many actors
//! or warm instances do not keep another's calls out.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The slots, and the idle instances (`W`) holding some of them.
pub(crate) struct Instances<W> {
    capacity: usize,
    /// Idle instances one job keeps at most.
    max_idle: usize,
    state: Mutex<State<W>>,
}

struct State<W> {
    free: usize,
    /// Slots held, by namespace (idle instances included).
    held: HashMap<u64, usize>,
    /// Idle instances by job, each job's least recently used first.
    idle: HashMap<u64, Vec<Idle<W>>>,
    /// Numbers idle instances in the order they went idle.
    clock: u64,
    /// Waiters in arrival order; served fewest-held namespace first.
    waiting: VecDeque<Waiter>,
}

struct Idle<W> {
    ns: u64,
    key: [u8; 32],
    /// When it went idle, by [`State::clock`].
    since: u64,
    warm: W,
}

struct Waiter {
    ns: u64,
    granted: oneshot::Sender<()>,
}

/// One slot, held by namespace `ns`; free again when dropped. Drop what
/// uses the slot (the store) first: the slot may be granted at once.
pub(crate) struct InstanceSlot<W> {
    instances: Arc<Instances<W>>,
    ns: u64,
    /// Set once an idle instance holds it instead.
    idle: bool,
}

impl<W> InstanceSlot<W> {
    fn new(instances: &Arc<Instances<W>>, ns: u64) -> Self {
        InstanceSlot { instances: instances.clone(), ns, idle: false }
    }
}

impl<W> Drop for InstanceSlot<W> {
    fn drop(&mut self) {
        if !self.idle {
            self.instances.release(self.ns);
        }
    }
}

/// A wait for a slot; if given up after it was granted, gives it back.
struct Waiting<'a, W> {
    instances: &'a Arc<Instances<W>>,
    ns: u64,
    rx: Option<oneshot::Receiver<()>>,
}

impl<W> Drop for Waiting<'_, W> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.instances.release(self.ns);
            }
        }
    }
}

impl<W> Instances<W> {
    /// `capacity` free slots; each job keeps at most `max_idle` instances idle.
    pub(crate) fn new(capacity: usize, max_idle: usize) -> Arc<Self> {
        let state =
            State { free: capacity, held: HashMap::new(), idle: HashMap::new(), clock: 0, waiting: VecDeque::new() };
        Arc::new(Instances { capacity, max_idle, state: Mutex::new(state) })
    }

    /// Slots in all.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots held now, by running and idle instances.
    pub(crate) fn in_use(&self) -> usize {
        self.capacity - self.state.lock().free
    }

    /// A slot for namespace `ns`: a free one, else an idle instance's
    /// (dropped before this returns), else the next one freed.
    pub(crate) async fn acquire(self: &Arc<Self>, ns: u64) -> InstanceSlot<W> {
        let rx = {
            let mut state = self.state.lock();
            if state.free > 0 {
                state.free -= 1;
                *state.held.entry(ns).or_default() += 1;
                None
            } else if let Some(victim) = state.evict() {
                state.unhold(victim.ns);
                *state.held.entry(ns).or_default() += 1;
                drop(state);
                drop(victim);
                None
            } else {
                let (granted, rx) = oneshot::channel();
                state.waiting.push_back(Waiter { ns, granted });
                Some(rx)
            }
        };
        if let Some(rx) = rx {
            let mut waiting = Waiting { instances: self, ns, rx: Some(rx) };
            waiting.rx.as_mut().expect("set above").await.expect("a waiter is only dropped once granted");
            waiting.rx = None;
        }
        InstanceSlot::new(self, ns)
    }

    /// The most recently idle instance of `key` in `job`, with its slot.
    pub(crate) fn take_idle(self: &Arc<Self>, job: u64, key: &[u8; 32]) -> Option<(W, InstanceSlot<W>)> {
        let mut state = self.state.lock();
        let idle = state.idle.get_mut(&job)?;
        let i = idle.iter().rposition(|idle| idle.key == *key)?;
        // A job's list stays, empty or not, until the job ends: calls
        // taking and returning its instances allocate nothing.
        let Idle { ns, warm, .. } = idle.remove(i);
        Some((warm, InstanceSlot::new(self, ns)))
    }

    /// Keeps `warm`, an instance of `key` in `job`, idle with its slot; or
    /// drops both if someone waits for a slot or the job keeps enough.
    pub(crate) fn put_idle(&self, mut slot: InstanceSlot<W>, job: u64, key: [u8; 32], warm: W) {
        let mut state = self.state.lock();
        if state.waiting.is_empty() && state.idle.get(&job).map_or(0, Vec::len) < self.max_idle {
            state.clock += 1;
            let since = state.clock;
            state.idle.entry(job).or_default().push(Idle { ns: slot.ns, key, since, warm });
            drop(state);
            slot.idle = true;
        } else {
            drop(state);
            drop(warm);
            drop(slot);
        }
    }

    /// Drops the idle instances of `job`, freeing their slots.
    pub(crate) fn end_job(&self, job: u64) {
        let ended = self.state.lock().idle.remove(&job).unwrap_or_default();
        // Dropping an instance unmaps its memory: outside the lock, and
        // before its slot goes to anyone.
        let namespaces: Vec<u64> = ended.iter().map(|idle| idle.ns).collect();
        drop(ended);
        namespaces.into_iter().for_each(|ns| self.release(ns));
    }

    /// Frees a slot of `ns`: to a waiter, else back to the free ones.
    fn release(&self, ns: u64) {
        let mut state = self.state.lock();
        state.unhold(ns);
        while let Some(waiter) = state.next_waiter() {
            if waiter.granted.send(()).is_ok() {
                *state.held.entry(waiter.ns).or_default() += 1;
                return;
            }
        }
        state.free += 1;
    }
}

impl<W> State<W> {
    fn unhold(&mut self, ns: u64) {
        if let Some(held) = self.held.get_mut(&ns) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&ns);
            }
        }
    }

    fn holding(&self, ns: u64) -> usize {
        self.held.get(&ns).copied().unwrap_or(0)
    }

    /// The idle instance to give up: the least recently used of the
    /// namespace holding the most slots. Only a full pool evicts, so the
    /// scan is off the common path.
    fn evict(&mut self) -> Option<Idle<W>> {
        let (job, i) = self
            .idle
            .iter()
            .flat_map(|(&job, idle)| idle.iter().enumerate().map(move |(i, idle)| (job, i, idle)))
            .max_by_key(|&(_, _, idle)| (self.holding(idle.ns), std::cmp::Reverse(idle.since)))
            .map(|(job, i, _)| (job, i))?;
        Some(self.idle.get_mut(&job).expect("found above").remove(i))
    }

    /// The oldest waiter of the waiting namespace holding the fewest slots.
    fn next_waiter(&mut self) -> Option<Waiter> {
        let fewest = self.waiting.iter().map(|w| self.holding(w.ns)).min()?;
        let i = self.waiting.iter().position(|w| self.holding(w.ns) == fewest)?;
        self.waiting.remove(i)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KEY: [u8; 32] = [7; 32];

    /// Counts the idle instances dropped.
    struct Warm(Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for Warm {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    async fn soon<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), f).await.expect("waited for a slot that should be there")
    }

    #[tokio::test]
    async fn a_call_evicts_an_idle_instance_when_none_is_free() {
        let instances = Instances::new(2, 2);
        let dropped = Arc::new(Default::default());
        for _ in 0..2 {
            let slot = instances.acquire(1).await;
            instances.put_idle(slot, 10, KEY, Warm(Arc::clone(&dropped)));
        }
        assert_eq!(instances.in_use(), 2, "idle instances hold their slots");
        // Another namespace's call (or load) needs one: an idle one goes.
        let slot = soon(instances.acquire(2)).await;
        assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(instances.take_idle(10, &KEY).is_some(), "the other idle instance stays");
        drop(slot);
    }

    #[tokio::test]
    async fn eviction_takes_from_the_namespace_holding_most_its_oldest_first() {
        let instances = Instances::new(4, 4);
        let dropped = Arc::new(Default::default());
        // Namespace 1 holds three idle instances (jobs 10, 11, 12 in that
        // order), namespace 2 one (job 20).
        for (ns, job) in [(1, 10), (2, 20), (1, 11), (1, 12)] {
            let slot = instances.acquire(ns).await;
            instances.put_idle(slot, job, KEY, Warm(Arc::clone(&dropped)));
        }
        let _slots = [soon(instances.acquire(3)).await, soon(instances.acquire(3)).await];
        assert!(instances.take_idle(10, &KEY).is_none() && instances.take_idle(11, &KEY).is_none());
        assert!(instances.take_idle(12, &KEY).is_some() && instances.take_idle(20, &KEY).is_some());
    }

    #[tokio::test]
    async fn an_instance_coming_back_idle_goes_to_a_waiter() {
        let instances = Instances::<Warm>::new(1, 4);
        let dropped = Arc::new(Default::default());
        let running = instances.acquire(1).await;
        let waiter = tokio::spawn({
            let instances = instances.clone();
            async move { drop(instances.acquire(2).await) }
        });
        tokio::task::yield_now().await;
        instances.put_idle(running, 10, KEY, Warm(Arc::clone(&dropped)));
        soon(waiter).await.unwrap();
        assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 1, "not kept while someone waited");
        assert!(instances.take_idle(10, &KEY).is_none());
        assert_eq!(instances.in_use(), 0);
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_namespace_holding_fewest() {
        let instances = Instances::<Warm>::new(3, 1);
        let hog = [instances.acquire(1).await, instances.acquire(1).await];
        let other = instances.acquire(2).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // Namespace 1 asks first, twice; namespace 3 after it.
        for ns in [1, 1, 3] {
            let (instances, order) = (instances.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let slot = instances.acquire(ns).await;
                order.lock().push(ns);
                slot
            }));
            tokio::task::yield_now().await;
        }
        drop(other);
        let first = soon(waiters.pop().unwrap()).await.unwrap();
        assert_eq!(*order.lock(), [3], "namespace 3 holds none: it goes first");
        drop((hog, first));
        for waiter in waiters {
            soon(waiter).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_job_keeps_at_most_its_idle_instances_and_frees_them_at_its_end() {
        let instances = Instances::new(4, 1);
        let dropped = Arc::new(Default::default());
        let (a, b) = (instances.acquire(1).await, instances.acquire(1).await);
        instances.put_idle(a, 10, KEY, Warm(Arc::clone(&dropped)));
        instances.put_idle(b, 10, KEY, Warm(Arc::clone(&dropped)));
        assert_eq!((instances.in_use(), dropped.load(std::sync::atomic::Ordering::Relaxed)), (1, 1));
        instances.end_job(10);
        assert_eq!((instances.in_use(), dropped.load(std::sync::atomic::Ordering::Relaxed)), (0, 2));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_nothing() {
        let instances = Instances::<Warm>::new(1, 1);
        let held = instances.acquire(1).await;
        assert!(tokio::time::timeout(Duration::from_millis(10), instances.acquire(2)).await.is_err());
        drop(held);
        drop(soon(instances.acquire(3)).await);
        assert_eq!(instances.in_use(), 0);
    }
}
