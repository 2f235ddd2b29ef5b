//! Which threads run a call. With background threads (`prism serve` has
//! them), a call starts on the node's own threads and moves to the
//! background ones the first time it computes for [`LONG_POLL`] without a
//! pause. Those run at a lower OS priority, so that the threads reading
//! requests and running short calls get a core at once even while every
//! cpu slot spins an endless loop. A call that has moved stays there.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// A poll this long marks a call as long-running. A guest yields at every
/// epoch tick (`prism_exec::EPOCH_TICK`, 10 ms), so a spinning call's polls
/// last about a tick, and a short call's a few microseconds.
pub const LONG_POLL: Duration = Duration::from_millis(2);

/// The node's threads and, optionally, background ones for long calls.
#[derive(Clone, Default)]
pub struct Threads {
    split: Option<Split>,
}

#[derive(Clone)]
struct Split {
    node: Handle,
    background: Handle,
}

impl Threads {
    /// Calls start on `node` and move to `background` once long.
    pub fn split(node: Handle, background: Handle) -> Self {
        Threads { split: Some(Split { node, background }) }
    }

    /// Starts `call` on the node's threads (the current runtime's, without
    /// background threads).
    pub fn spawn<F>(&self, call: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.split {
            None => tokio::spawn(call),
            Some(split) => split.node.spawn(self.moving(call)),
        }
    }

    /// `call`, which moves to the background threads once long; dropping it
    /// stops the call wherever it runs.
    pub fn moving<F>(&self, call: F) -> Moving<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let background = self.split.as_ref().map(|split| split.background.clone());
        Moving { here: Some(Box::pin(call)), there: None, background }
    }
}

/// A call that runs where it is polled until a poll of it is long, and on
/// the background threads from then on.
pub struct Moving<F: Future> {
    here: Option<Pin<Box<F>>>,
    there: Option<JoinHandle<F::Output>>,
    background: Option<Handle>,
}

impl<F> Future for Moving<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if let Some(call) = &mut this.here {
            let Some(background) = &this.background else { return call.as_mut().poll(cx) };
            let started = Instant::now();
            let polled = call.as_mut().poll(cx);
            if polled.is_ready() || started.elapsed() < LONG_POLL {
                return polled;
            }
            this.there = this.here.take().map(|call| background.spawn(call));
        }
        let handle = this.there.as_mut().expect("a call is here or there");
        match ready!(Pin::new(handle).poll(cx)) {
            Ok(output) => Poll::Ready(output),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The background threads shut down: the process is ending.
            Err(_) => Poll::Pending,
        }
    }
}

impl<F: Future> Drop for Moving<F> {
    fn drop(&mut self) {
        if let Some(handle) = &self.there {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn background() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("long").build().unwrap()
    }

    fn thread() -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }

    #[tokio::test]
    async fn a_short_call_stays_and_a_long_one_moves() {
        let long = background();
        let threads = Threads::split(Handle::current(), long.handle().clone());
        let here = thread();
        assert_eq!(threads.spawn(async { thread() }).await.unwrap(), here);
        let moved = threads.spawn(async {
            let first = thread();
            std::thread::sleep(LONG_POLL * 2);
            tokio::task::yield_now().await;
            (first, thread())
        });
        assert_eq!(moved.await.unwrap(), (here, Some("long".to_owned())));
        long.shutdown_background();
    }

    #[tokio::test]
    async fn dropping_a_moved_call_stops_it() {
        let long = background();
        let threads = Threads::split(Handle::current(), long.handle().clone());
        let (alive, mut gone) = tokio::sync::oneshot::channel::<()>();
        let mut call = Box::pin(threads.moving(async move {
            std::thread::sleep(LONG_POLL * 2);
            let _alive = alive;
            std::future::pending::<()>().await
        }));
        assert!(futures::poll!(call.as_mut()).is_pending());
        drop(call);
        // The call, on the background threads, is dropped: its sender goes.
        assert!(tokio::time::timeout(std::time::Duration::from_secs(5), &mut gone).await.unwrap().is_err());
        long.shutdown_background();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn without_background_threads_calls_stay() {
        let here = thread();
        let call = async {
            std::thread::sleep(LONG_POLL * 2);
            tokio::task::yield_now().await;
            thread()
        };
        assert_eq!(Threads::default().moving(call).await, here);
    }
}
