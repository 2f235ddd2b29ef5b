//! The node's logical cpus, shared fairly between namespaces. A free cpu
//! goes to the namespaces with waiting tasks in turn (round robin), and
//! within one namespace first come, first served: one tenant's flood of
//! tasks waits behind itself, not in front of everyone else.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Logical cpus and who waits for them.
pub struct Slots {
    state: Mutex<State>,
}

struct State {
    free: u32,
    /// Waiters by namespace, each queue in arrival order.
    queues: HashMap<u64, VecDeque<Waiter>>,
    /// Namespaces with waiters, in the order they are served next.
    ring: VecDeque<u64>,
}

struct Waiter {
    n: u32,
    granted: oneshot::Sender<()>,
}

/// `n` cpus, given back when dropped.
pub struct Permit {
    slots: Arc<Slots>,
    n: u32,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.slots.release(self.n);
    }
}

/// A wait for cpus; if given up after they were granted, gives them back.
struct Waiting<'a> {
    slots: &'a Arc<Slots>,
    n: u32,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.slots.release(self.n);
            }
        }
    }
}

impl Slots {
    /// `cpus` logical cpus, all free.
    pub fn new(cpus: u32) -> Arc<Self> {
        Arc::new(Slots { state: Mutex::new(State { free: cpus, queues: HashMap::new(), ring: VecDeque::new() }) })
    }

    /// Waits for `n` cpus for namespace `ns`. Zero cpus never wait.
    pub async fn acquire(self: &Arc<Self>, ns: u64, n: u32) -> Permit {
        if n == 0 {
            return Permit { slots: self.clone(), n };
        }
        let rx = {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            if state.ring.is_empty() && state.free >= n {
                state.free -= n;
                return Permit { slots: self.clone(), n };
            }
            let (granted, rx) = oneshot::channel();
            let queue = state.queues.entry(ns).or_default();
            if queue.is_empty() {
                state.ring.push_back(ns);
            }
            queue.push_back(Waiter { n, granted });
            rx
        };
        let mut waiting = Waiting { slots: self, n, rx: Some(rx) };
        let rx = waiting.rx.as_mut().expect("set above");
        rx.await.expect("a waiter is only dropped once granted");
        waiting.rx = None;
        Permit { slots: self.clone(), n }
    }

    fn release(&self, n: u32) {
        let mut state = self.state.lock();
        state.free += n;
        state.grant();
    }
}

impl State {
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
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn namespaces_take_turns() {
        let slots = Slots::new(1);
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
        let slots = Slots::new(1);
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

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_nothing() {
        let slots = Slots::new(1);
        let held = slots.acquire(0, 1).await;
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), slots.acquire(1, 1)).await;
        assert!(gave_up.is_err());
        drop(held);
        // The cpu is free again, for anyone.
        let _again = tokio::time::timeout(std::time::Duration::from_secs(5), slots.acquire(2, 1)).await.unwrap();
    }
}
