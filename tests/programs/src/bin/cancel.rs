//! Ray's `ray.cancel`, one case per argument: `prism run cancel.wasm -- CASE`.
//! tests/all/cancel.rs asserts what each case prints. Cases learn that a
//! task has started through a job global it sets, never by sleeping.

use std::time::Duration;

#[path = "../common.rs"]
mod common;
use common::{show, value_after};

use prism::{Error, Global, ObjectRef, Options};

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Counts one more run of the task keyed `key`.
fn count_run(key: &str) {
    let runs = Global::<u32>::new(leak(format!("runs-{key}")));
    runs.set(&(runs.get().unwrap_or(0) + 1)).unwrap();
}

/// How many times the task keyed `key` started.
fn runs(key: &str) -> u32 {
    Global::<u32>::new(leak(format!("runs-{key}"))).get().unwrap_or(0)
}

/// Waits (up to 10 s) until the task keyed `key` has started.
fn await_start(key: &str) {
    for _ in 0..1000 {
        if runs(key) > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("task `{key}` never started");
}

/// "cancelled: " for a cancel, else nothing.
fn kind<T>(result: &prism::Result<T>) -> &'static str {
    if matches!(result, Err(Error::Cancelled(_))) { "cancelled: " } else { "" }
}

/// Counts its run, then loops until it is interrupted.
#[prism::remote]
fn spin(key: String) -> u64 {
    count_run(&key);
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Counts its run, sleeps `ms`, then records that it finished.
#[prism::remote]
fn mark(key: String, ms: u64) -> u64 {
    count_run(&key);
    std::thread::sleep(Duration::from_millis(ms));
    Global::<bool>::new(leak(format!("done-{key}"))).set(&true).unwrap();
    7
}

/// Starts `children` tasks, each `mark(key-i, ms)` or, with `ms` 0, a
/// `spin`, and waits for them all.
#[prism::remote]
fn parent(key: String, children: u32, ms: u64) -> Vec<u64> {
    count_run(&key);
    let refs: Vec<ObjectRef<u64>> = (0..children)
        .map(|i| {
            let child = format!("{key}-{i}");
            if ms == 0 { spin::remote(child) } else { mark::remote(child, ms) }
        })
        .collect();
    prism::get_all(&refs).unwrap()
}

#[prism::remote]
fn consume(x: i64) -> i64 {
    x + 1
}

/// An endless stream of numbers, one every 5 ms.
#[prism::remote]
fn ticks() -> impl Iterator<Item = u64> {
    (0..).inspect(|_| std::thread::sleep(Duration::from_millis(5)))
}

#[prism::actor]
struct Worker;

#[prism::actor]
impl Worker {
    fn new() -> Self {
        Worker
    }

    /// Counts its run, then sleeps `ms`.
    fn work(&mut self, key: String, ms: u64) -> u32 {
        count_run(&key);
        std::thread::sleep(Duration::from_millis(ms));
        1
    }
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "pending" => {
            // Run with --workers 1: `later` waits for the slot `busy` holds.
            let busy = mark::remote("busy".to_string(), 300);
            await_start("busy");
            let later = mark::remote("later".to_string(), 0);
            prism::cancel(&later, true).unwrap();
            let result = prism::get(&later);
            println!("pending: {}{}", kind(&result), show(result));
            println!("busy: {}", show(prism::get(&busy)));
            // Anything that could still run `later` has had its slot by now.
            println!("after: {}", show(prism::get(&mark::remote("after".to_string(), 0))));
            println!("later ran {} times", runs("later"));
        }
        "running" => {
            let r = spin::remote_with(&Options::new().max_retries(5), "spin".to_string());
            await_start("spin");
            prism::cancel(&r, true).unwrap();
            let result = prism::get(&r);
            println!("running: {}{}", kind(&result), show(result));
            // Never retried: a retry would have counted a second run.
            println!("next: {}", show(prism::get(&mark::remote("next".to_string(), 0))));
            println!("spin ran {} times", runs("spin"));
        }
        "recursive" => {
            // Run with --workers 2: two spinning children hold both slots,
            // and `after` only runs once cancelling their parent frees them.
            let p = parent::remote("p".to_string(), 2, 0);
            await_start("p-0");
            await_start("p-1");
            prism::cancel(&p, true).unwrap();
            let result = prism::get(&p);
            println!("parent: {}{}", kind(&result), show(result));
            println!("after: {}", show(prism::get(&value_after::remote(0, 5))));
        }
        "not-recursive" => {
            let p = parent::remote("q".to_string(), 1, 300);
            await_start("q-0");
            prism::cancel(&p, false).unwrap();
            let result = prism::get(&p);
            println!("parent: {}{}", kind(&result), show(result));
            // The child goes on to the end.
            let done = (0..1000).any(|_| {
                std::thread::sleep(Duration::from_millis(10));
                Global::<bool>::new("done-q-0").get().is_ok()
            });
            println!("child finished: {done}");
        }
        "chain" => {
            // Ray's test_cancel_chain: up → mid → down; cancelling mid fails
            // down, and up still finishes.
            let up = value_after::remote(300, 1);
            let mid = consume::remote(&up);
            let down = consume::remote(&mid);
            prism::cancel(&mid, true).unwrap();
            println!("up: {}", show(prism::get(&up)));
            let result = prism::get(&mid);
            println!("mid: {}{}", kind(&result), show(result));
            let result = prism::get(&down);
            println!("down: {}{}", kind(&result), show(result));
            if let Err(Error::Cancelled(chain)) = prism::get(&down) {
                println!("down chain: {:?}", chain.iter().map(|f| f.function.as_str()).collect::<Vec<_>>());
            }
        }
        "fast" => {
            // Ray's test_fast: cancel right after submit, many times; each
            // ends in its value or `cancelled`, never a hang.
            let (mut values, mut cancelled) = (0, 0);
            for i in 0..200 {
                let r = value_after::remote(i % 3, i as i64);
                prism::cancel(&r, true).unwrap();
                match prism::get_timeout(&r, Duration::from_secs(30)) {
                    Ok(v) if v == i as i64 => values += 1,
                    Err(Error::Cancelled(_)) => cancelled += 1,
                    other => println!("unexpected: {other:?}"),
                }
            }
            println!("fast: {} ended", values + cancelled);
        }
        "finished" => {
            let r = consume::remote(1);
            println!("before: {}", show(prism::get(&r)));
            prism::cancel(&r, true).unwrap();
            println!("after cancel: {}", show(prism::get(&r)));
        }
        "generator" => {
            let mut stream = ticks::remote();
            let first: Vec<ObjectRef<u64>> = stream.by_ref().take(2).collect();
            stream.cancel().unwrap();
            println!("yielded before: {}", show(prism::get_all(&first)));
            // Items yielded before the cancel landed are readable; then
            // the stream reports `cancelled`.
            let mut readable = true;
            let end = loop {
                match stream.next_timeout(Duration::from_secs(30)) {
                    Ok(Some(item)) => readable &= prism::get(&item).is_ok(),
                    Ok(None) => break "it just ended".to_string(),
                    Err(e) => break format!("{}{e}", kind::<()>(&Err(e.clone()))),
                }
            };
            println!("later items readable: {readable}");
            println!("end: {end}");
        }
        "actor" => {
            // A running actor call is left alone; a queued one is cancelled.
            let worker = Worker::remote();
            let running = worker.work("running".to_string(), 300).remote();
            let queued = worker.work("queued".to_string(), 0).remote();
            await_start("running");
            prism::cancel(&running, true).unwrap();
            prism::cancel(&queued, true).unwrap();
            println!("running: {}", show(prism::get(&running)));
            let result = prism::get(&queued);
            println!("queued: {}{}", kind(&result), show(result));
            println!("next: {}", show(prism::get(&worker.work("next".to_string(), 0).remote())));
            println!("queued ran {} times", runs("queued"));
        }
        other => {
            eprintln!("unknown case `{other}`");
            std::process::exit(2);
        }
    }
}
