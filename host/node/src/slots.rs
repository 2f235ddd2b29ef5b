//! The node's logical cpus, shared fairly between namespaces. A free cpu
//! goes to the namespaces with waiting tasks in turn (round robin), and
//! within one namespace first come, first served: one tenant's flood of
//! tasks waits behind itself, not in front of everyone else.
//!
//! Cpus also change hands while calls run. A namespace holding more than
//! its share (the cpus over the namespaces holding or waiting) while
//! another waits owes a turn: its calls pass their cpus on at their next
//! tick, which the node makes come at once, and take them back later ahead
//! of its newer calls. A namespace under its share does not even wait for
//! that: it is lent the cpus at once, and the node runs over its count
//! until the owing calls pass theirs, which repays the loan. (An owing call
//! may be off its core just then, and noticing would wait for the kernel's
//! next tick.) An endless loop in one tenant thus delays another's call by
//! no more than the kernel does, not by its cpu deadline.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use prism_exec::Lease;

/// Logical cpus and who waits for them.
pub struct Slots {
    state: Mutex<State>,
    /// Makes running calls check [`Permit::owes_turn`] now.
    interrupt: Box<dyn Fn() + Send + Sync>,
}

struct State {
    capacity: u32,
    free: u32,
    /// Cpus granted beyond `capacity`, repaid by the next ones freed.
    lent: u32,
    /// Cpus held, by namespace (only namespaces holding some).
    held: HashMap<u64, u32>,
    /// Waiters by namespace, each queue in arrival order.
    queues: HashMap<u64, VecDeque<Waiter>>,
    /// Namespaces with waiters, in the order they are served next.
    ring: VecDeque<u64>,
}

struct Waiter {
    n: u32,
    granted: oneshot::Sender<()>,
}

/// `n` cpus of namespace `ns`, given back when dropped, and passed on and
/// taken back while held (see the module's doc).
pub struct Permit {
    slots: Arc<Slots>,
    ns: u64,
    n: u32,
    /// False while passed on.
    held: AtomicBool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.held.load(Ordering::Acquire) {
            self.slots.release(self.ns, self.n);
        }
    }
}

impl Lease for Permit {
    fn owes_turn(&self) -> bool {
        self.n > 0 && self.held.load(Ordering::Acquire) && self.slots.state.lock().owes_turn(self.ns)
    }

    fn pass(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            if self.held.swap(false, Ordering::AcqRel) {
                let rx = self.slots.pass_on(self.ns, self.n);
                self.slots.wait(self.ns, self.n, rx).await;
            } else {
                self.slots.take(self.ns, self.n).await;
            }
            self.held.store(true, Ordering::Release);
        })
    }
}

/// A wait for cpus; if given up after they were granted, gives them back.
struct Waiting<'a> {
    slots: &'a Arc<Slots>,
    ns: u64,
    n: u32,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.slots.release(self.ns, self.n);
            }
        }
    }
}

impl Slots {
    /// `cpus` logical cpus, all free; `interrupt` makes running calls check
    /// whether they owe a turn.
    pub fn new(cpus: u32, interrupt: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        let state = State {
            capacity: cpus,
            free: cpus,
            lent: 0,
            held: HashMap::new(),
            queues: HashMap::new(),
            ring: VecDeque::new(),
        };
        Arc::new(Slots { state: Mutex::new(state), interrupt: Box::new(interrupt) })
    }

    /// Waits for `n` cpus for namespace `ns`. Zero cpus never wait.
    pub async fn acquire(self: &Arc<Self>, ns: u64, n: u32) -> Permit {
        self.take(ns, n).await;
        Permit { slots: self.clone(), ns, n, held: AtomicBool::new(true) }
    }

    /// Waits until `n` cpus are counted as `ns`'s.
    async fn take(self: &Arc<Self>, ns: u64, n: u32) {
        if n == 0 {
            return;
        }
        let (rx, interrupt) = {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            if state.ring.is_empty() && state.free >= n {
                state.free -= n;
                *state.held.entry(ns).or_default() += n;
                return;
            }
            if state.ring.is_empty() && state.may_lend(ns, n) {
                state.lent += n;
                *state.held.entry(ns).or_default() += n;
                drop(guard);
                (self.interrupt)();
                return;
            }
            let rx = state.queue(ns, n, false);
            (rx, state.held.keys().any(|&other| other != ns && state.owes_turn(other)))
        };
        if interrupt {
            (self.interrupt)();
        }
        self.wait(ns, n, rx).await;
    }

    /// Gives `ns`'s `n` cpus to the next namespace in turn, and queues for
    /// them again ahead of `ns`'s other waiters.
    fn pass_on(&self, ns: u64, n: u32) -> oneshot::Receiver<()> {
        let mut state = self.state.lock();
        state.unhold(ns, n);
        let rx = state.queue(ns, n, true);
        state.grant();
        rx
    }

    /// Waits for the grant `rx`, of `n` cpus for `ns`.
    async fn wait(self: &Arc<Self>, ns: u64, n: u32, rx: oneshot::Receiver<()>) {
        let mut waiting = Waiting { slots: self, ns, n, rx: Some(rx) };
        let rx = waiting.rx.as_mut().expect("set above");
        rx.await.expect("a waiter is only dropped once granted");
        waiting.rx = None;
    }

    fn release(&self, ns: u64, n: u32) {
        let mut state = self.state.lock();
        state.unhold(ns, n);
        state.grant();
    }
}

impl State {
    /// Frees `n` cpus `ns` held, repaying what was lent first.
    fn unhold(&mut self, ns: u64, n: u32) {
        let repaid = n.min(self.lent);
        self.lent -= repaid;
        self.free += n - repaid;
        if let Some(held) = self.held.get_mut(&ns) {
            *held -= n;
            if *held == 0 {
                self.held.remove(&ns);
            }
        }
    }

    /// Queues a wait for `n` cpus for `ns`: last in its namespace, or with
    /// `first` (a call passing its cpus) first, its namespace then served
    /// after every other.
    fn queue(&mut self, ns: u64, n: u32, first: bool) -> oneshot::Receiver<()> {
        let (granted, rx) = oneshot::channel();
        let queue = self.queues.entry(ns).or_default();
        let fresh = queue.is_empty();
        let waiter = Waiter { n, granted };
        if first {
            queue.push_front(waiter);
            self.ring.retain(|&waiting| waiting != ns);
            self.ring.push_back(ns);
        } else {
            queue.push_back(waiter);
            if fresh {
                self.ring.push_back(ns);
            }
        }
        rx
    }

    /// Hands free cpus to the namespaces in turn, each its oldest waiter.
    fn grant(&mut self) {
        while let Some(&ns) = self.ring.front() {
            let queue = self.queues.get_mut(&ns).expect("a namespace in the ring has waiters");
            // The head waits for enough cpus: asking for many is never starved
            // by later, smaller asks.
            if queue.front().expect("non-empty").n > self.free {
                break;
            }
            let waiter = queue.pop_front().expect("non-empty");
            self.ring.pop_front();
            if queue.is_empty() {
                self.queues.remove(&ns);
            } else {
                self.ring.push_back(ns);
            }
            // A waiter that gave up is skipped.
            if waiter.granted.send(()).is_ok() {
                self.free -= waiter.n;
                *self.held.entry(ns).or_default() += waiter.n;
            }
        }
    }

    /// Whether `ns` may be lent `n` cpus: holding them keeps it within its
    /// share, another namespace owes it a turn, and the loans stay within
    /// the node's count.
    fn may_lend(&self, ns: u64, n: u32) -> bool {
        let holders = self.held.len() + usize::from(!self.held.contains_key(&ns));
        let share = self.capacity / holders as u32;
        self.lent + n <= self.capacity
            && self.held.get(&ns).copied().unwrap_or(0) + n <= share
            && self.held.iter().any(|(&other, &held)| other != ns && held > share)
    }

    /// Whether `ns` holds more than its share while another namespace waits
    /// or was lent cpus.
    fn owes_turn(&self, ns: u64) -> bool {
        if self.lent == 0 && !self.ring.iter().any(|&waiting| waiting != ns) {
            return false;
        }
        let newcomers = self.ring.iter().filter(|waiting| !self.held.contains_key(waiting)).count();
        let share = self.capacity / (self.held.len() + newcomers) as u32;
        self.held.get(&ns).is_some_and(|&held| held > share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn namespaces_take_turns() {
        let slots = Slots::new(1, || {});
        let held = slots.acquire(0, 1).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Namespace 1 queues five tasks, then namespace 2 one.
        for (ns, i) in [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0)] {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = slots.acquire(ns, 1).await;
                order.lock().push((ns, i));
            }));
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        // Namespace 2's task runs second, not after all of namespace 1's.
        assert_eq!(order.lock()[..2], [(1, 0), (2, 0)]);
    }

    /// Regression: `num-cpus = 0` promises that the task never waits for a
    /// slot, even while every cpu is taken and others queue.
    #[tokio::test]
    async fn num_cpus_zero_never_waits_for_a_slot() {
        let slots = Slots::new(1, || {});
        let _held = slots.acquire(0, 1).await;
        let queued = tokio::spawn({
            let slots = slots.clone();
            async move { drop(slots.acquire(0, 1).await) }
        });
        tokio::task::yield_now().await;
        let zero = tokio::time::timeout(std::time::Duration::from_secs(5), slots.acquire(1, 0)).await;
        assert!(zero.is_ok(), "a zero-cpu acquire queued behind a full node");
        queued.abort();
    }

    /// A namespace on every cpu owes one to a newcomer, at once (the
    /// interrupt), and gets it back ahead of its own newer calls.
    #[tokio::test]
    async fn a_namespace_over_its_share_passes_a_cpu_and_takes_it_back() {
        let interrupts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let slots = Slots::new(2, {
            let interrupts = interrupts.clone();
            move || {
                interrupts.fetch_add(1, Ordering::Relaxed);
            }
        });
        let spinning = [Arc::new(slots.acquire(1, 1).await), Arc::new(slots.acquire(1, 1).await)];
        assert!(!spinning[0].owes_turn(), "nobody waits");
        let later = tokio::spawn({
            let slots = slots.clone();
            async move { drop(slots.acquire(1, 1).await) }
        });
        tokio::task::yield_now().await;
        assert!(!spinning[0].owes_turn(), "only its own namespace waits");
        let newcomer = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(2, 1).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(interrupts.load(Ordering::Relaxed), 1);
        assert!(spinning[0].owes_turn());
        let back = tokio::spawn(spinning[0].clone().pass());
        let newcomer = newcomer.await.unwrap();
        // Holding one each, nobody owes anyone.
        assert!(!spinning[1].owes_turn() && !newcomer.owes_turn());
        drop(newcomer);
        back.await.unwrap();
        assert!(!later.is_finished(), "the passed cpu came back ahead of the newer call");
        drop(spinning);
        later.await.unwrap();
    }

    /// A newcomer within its share does not wait for the owing call to
    /// notice: it is lent a cpu at once, which that call's pass repays.
    #[tokio::test]
    async fn a_newcomer_is_lent_a_cpu_until_the_owing_call_passes_one() {
        let slots = Slots::new(2, || {});
        let spinning = [Arc::new(slots.acquire(1, 1).await), Arc::new(slots.acquire(1, 1).await)];
        let lent = tokio::time::timeout(std::time::Duration::from_secs(5), slots.acquire(2, 1)).await;
        let lent = lent.expect("the newcomer waited for the spinning calls");
        assert!(spinning[0].owes_turn() && !lent.owes_turn());
        // Its second call would exceed its share: that one waits.
        let second = tokio::spawn({
            let slots = slots.clone();
            async move { drop(slots.acquire(2, 1).await) }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        // The pass repays the loan: the cpu goes to nobody, and the passing
        // call waits until the newcomer is done.
        let back = tokio::spawn(spinning[0].clone().pass());
        tokio::task::yield_now().await;
        assert!(!spinning[1].owes_turn(), "holding one each, nobody owes");
        assert!(!back.is_finished() && !second.is_finished());
        drop(lent);
        back.await.unwrap();
        assert_eq!(slots.state.lock().lent, 0);
        drop(spinning);
        second.await.unwrap();
        assert_eq!(slots.state.lock().free, 2);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_nothing() {
        let slots = Slots::new(1, || {});
        let held = slots.acquire(0, 1).await;
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), slots.acquire(1, 1)).await;
        assert!(gave_up.is_err());
        drop(held);
        // The cpu is free again, for anyone.
        let _again = tokio::time::timeout(std::time::Duration::from_secs(5), slots.acquire(2, 1)).await.unwrap();
    }
}
