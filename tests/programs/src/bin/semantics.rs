//! Ray's semantics, one case per argument: `prism run semantics.wasm -- CASE`.
//! tests/all/semantics.rs asserts what each case prints.

use std::time::Duration;

#[path = "../common.rs"]
mod common;
use common::{show, value_after};

use prism::{Error, Global, ObjectRef, Options};

#[prism::remote]
fn chain(depth: u32) -> u32 {
    if depth == 0 { 0 } else { prism::get(&chain::remote(depth - 1)).unwrap() + 1 }
}

#[prism::remote]
fn tree(depth: u32, width: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let children: Vec<_> = (0..width).map(|_| tree::remote(depth - 1, width)).collect();
    prism::get_all(&children).unwrap().into_iter().sum()
}

#[prism::remote]
fn fail(message: String) -> Result<i64, String> {
    Err(message)
}

#[prism::remote]
fn consume(x: i64) -> i64 {
    x + 1
}

#[prism::remote]
fn get_nested(inner: Vec<ObjectRef<i64>>) -> Result<i64, Error> {
    Ok(prism::get_all(&inner)?.into_iter().sum())
}

/// Whether this is the first call with `key` in the job (and records it).
fn first_attempt(key: String) -> bool {
    let tried = Global::<bool>::new(leak(key));
    let first = tried.get().is_err();
    tried.set(&true).unwrap();
    first
}

/// Starts a task that fails and never reads its result.
#[prism::remote]
fn forget_failure() -> u32 {
    let failed = fail::remote("forgotten in a task".to_string());
    prism::wait(std::slice::from_ref(&failed)).unwrap();
    7
}

/// Calls `exit` instead of returning.
#[prism::remote]
fn exits() {
    std::process::exit(0)
}

/// "crashed: " for a crash, else nothing.
fn kind<T>(result: &prism::Result<T>) -> &'static str {
    if matches!(result, Err(Error::TaskCrashed(_))) { "crashed: " } else { "" }
}

/// Traps the first time it runs with `key`, succeeds the second.
#[prism::remote]
fn flaky_trap(key: String) -> String {
    if first_attempt(key) {
        panic!("first attempt fails");
    }
    "second attempt succeeded".into()
}

/// Returns an error the first time it runs with `key`, succeeds the second.
#[prism::remote]
fn flaky_error(key: String) -> Result<String, String> {
    if first_attempt(key) {
        return Err("first attempt returns an error".into());
    }
    Ok("second attempt succeeded".into())
}

#[prism::remote]
fn endless_loop() -> u64 {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[prism::remote]
fn memory_bomb() -> usize {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 16 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn recurse(n: u64) -> u64 {
    if n == u64::MAX { 0 } else { std::hint::black_box(recurse(std::hint::black_box(n + 1))) + 1 }
}

#[prism::remote]
fn stack_overflow() -> u64 {
    recurse(0)
}

/// Waits (up to 10 s) until `count` tasks of the job have arrived: it only
/// returns true if they all ran at the same time.
#[prism::remote]
fn rendezvous(me: u32, count: u32) -> bool {
    Global::<bool>::new(leak(format!("arrived-{me}"))).set(&true).unwrap();
    for _ in 0..1000 {
        if (0..count).all(|i| Global::<bool>::new(leak(format!("arrived-{i}"))).get().is_ok()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[prism::remote]
fn count_to(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

/// Yields `n` items, then fails.
#[prism::remote]
fn fail_after(n: u32) -> impl Iterator<Item = Result<u32, String>> {
    (0..=n).map(move |i| if i < n { Ok(i) } else { Err(format!("failed after {n} items")) })
}

/// Yields 0, 1, then traps on its first attempt; yields 0..4 on the second.
#[prism::remote]
fn flaky_generator(key: String) -> impl Iterator<Item = u32> {
    let first = first_attempt(key);
    (0..4).inspect(move |i| {
        if first && *i == 2 {
            panic!("first attempt dies after two items");
        }
    })
}

#[prism::remote]
fn slow_items(ms: u64) -> impl Iterator<Item = u32> {
    (0..2).inspect(move |_| std::thread::sleep(Duration::from_millis(ms)))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "get-order" => {
            let (a, b, c) = (prism::put(&1i64).unwrap(), prism::put(&2i64).unwrap(), prism::put(&3i64).unwrap());
            let slow = value_after::remote(50, 4);
            println!("{:?}", prism::get_all(&[a.clone(), slow.clone(), b.clone(), a, c, slow, b]).unwrap());
        }
        "get-timeout" => {
            let r = value_after::remote(500, 7);
            println!("first: {}", show(prism::get_timeout(&r, Duration::from_millis(20))));
            println!("later: {}", show(prism::get(&r)));
        }
        "wait" => {
            let slow = value_after::remote(5000, 0);
            let fast: Vec<_> = (1..=3).map(|i| value_after::remote(0, i)).collect();
            let all = vec![slow.clone(), fast[0].clone(), fast[1].clone(), fast[2].clone()];
            let (ready, not_ready) = prism::wait_with(&all, 2, Some(Duration::from_secs(4))).unwrap();
            println!("ready {}, not ready {}", ready.len(), not_ready.len());
            println!("slow not ready: {}", not_ready.contains(&slow));
            let in_order = |part: &[ObjectRef<i64>]| {
                let pos: Vec<_> = part.iter().map(|r| all.iter().position(|a| a == r).unwrap()).collect();
                pos.windows(2).all(|w| w[0] < w[1])
            };
            println!("input order kept: {}", in_order(&ready) && in_order(&not_ready));
            let (ready, not_ready) = prism::wait_with(&[slow], 1, Some(Duration::from_millis(20))).unwrap();
            println!("after timeout: ready {}, not ready {}", ready.len(), not_ready.len());
            let (ready, not_ready) = prism::wait_with(&fast, 3, None).unwrap();
            println!("all fast: ready {}, not ready {}", ready.len(), not_ready.len());
        }
        "wait-edge" => {
            let none: Vec<ObjectRef<i64>> = Vec::new();
            let (ready, not_ready) = prism::wait_with(&none, 0, None).unwrap();
            println!("empty: ready {}, not ready {}", ready.len(), not_ready.len());
            let (ready, not_ready) = prism::wait(&none).unwrap();
            println!("empty, default num_returns: ready {}, not ready {}", ready.len(), not_ready.len());
            let a = prism::put(&1i64).unwrap();
            println!("num_returns 0: {}", show(prism::wait_with(std::slice::from_ref(&a), 0, None)));
            println!("duplicates: {}", show(prism::wait_with(&[a.clone(), a.clone()], 1, None)));
            println!("too many: {}", show(prism::wait_with(&[a], 2, None)));
        }
        "chain" => println!("chain depth {}", prism::get(&chain::remote(100)).unwrap()),
        "tree" => println!("tree leaves {}", prism::get(&tree::remote(3, 5)).unwrap()),
        "errors" => {
            let failed = fail::remote("boom".to_string());
            println!("direct: {}", show(prism::get(&failed)));
            println!("consumer: {}", show(prism::get(&consume::remote(&failed))));
            let nested = get_nested::remote(vec![prism::put(&1i64).unwrap(), failed]);
            let nested = prism::get(&nested);
            if let Err(Error::TaskFailed(chain)) = &nested {
                let names: Vec<_> = chain.iter().map(|f| f.function.as_str()).collect();
                println!("nested chain: {names:?}");
            }
            println!("nested: {}", show(nested));
            let unknown: ObjectRef<i64> = prism::__private::remote("squre", Vec::new(), &Options::new());
            println!("unknown function: {}", show(prism::get(&unknown)));
            let greedy = value_after::remote_with(&Options::new().num_cpus(1000), 0, 1);
            println!("too many cpus: {}", show(prism::get(&greedy)));
            if let Err(Error::TaskFailed(chain)) = prism::get(&consume::remote(fail::remote("deep".to_string()))) {
                let names: Vec<_> = chain.iter().map(|f| f.function.as_str()).collect();
                println!("chain: {names:?}");
            }
        }
        "unhandled" => {
            // Read, or consumed by a task that was read: not reported.
            let _ = prism::get(&fail::remote("read".to_string()));
            let _ = prism::get(&consume::remote(fail::remote("consumed".to_string())));
            // Waited for (not a read), then dropped: reported.
            let unread = fail::remote("nobody read this".to_string());
            prism::wait(std::slice::from_ref(&unread)).unwrap();
            drop(unread);
            println!("forgot: {}", show(prism::get(&forget_failure::remote())));
            // Held to the end of the driver: reported when it lets go.
            let held = fail::remote("held to the end".to_string());
            prism::wait(std::slice::from_ref(&held)).unwrap();
            std::mem::forget(held);
        }
        "retry" => {
            let key = |k: &str| k.to_string();
            let once = Options::new().max_retries(0);
            let crashed = prism::get(&flaky_trap::remote_with(&once, key("a")));
            println!("trap, no retries: {}{}", kind(&crashed), show(crashed.clone()));
            println!("trap, default retries: {}", show(prism::get(&flaky_trap::remote(key("e")))));
            let exited = prism::get(&exits::remote_with(&once));
            println!("exit: {}{}", kind(&exited), show(exited.clone()));
            let retry = Options::new().max_retries(1);
            println!("trap, max_retries 1: {}", show(prism::get(&flaky_trap::remote_with(&retry, key("b")))));
            let no_exc = Options::new().max_retries(3);
            println!("error, retry_exceptions off: {}", show(prism::get(&flaky_error::remote_with(&no_exc, key("c")))));
            let exc = Options::new().max_retries(1).retry_exceptions(true);
            println!("error, retry_exceptions on: {}", show(prism::get(&flaky_error::remote_with(&exc, key("d")))));
        }
        "limits" => {
            let fine: Vec<_> = (0..4).map(|i| value_after::remote(100, i)).collect();
            let looping = endless_loop::remote();
            let bomb = memory_bomb::remote();
            let deep = stack_overflow::remote();
            println!("endless loop: {}", show(prism::get(&looping)));
            println!("memory bomb: {}", show(prism::get(&bomb)));
            println!("stack overflow: {}", show(prism::get(&deep)));
            println!("others: {}", show(prism::get_all(&fine)));
        }
        "rendezvous" => {
            let arrivals: Vec<_> = (0..2).map(|i| rendezvous::remote(i, 2)).collect();
            println!("ran at once: {:?}", prism::get_all(&arrivals).unwrap());
        }
        "sandbox" => {
            // Nothing of the host is reachable unless configuration grants it.
            println!("env vars: {}", std::env::vars().count());
            println!("read /etc/passwd: {}", std::fs::read("/etc/passwd").is_ok());
            println!("list /: {}", std::fs::read_dir("/").is_ok());
            println!("tcp connect: {}", std::net::TcpStream::connect("127.0.0.1:22").is_ok());
            println!("tcp listen: {}", std::net::TcpListener::bind("127.0.0.1:0").is_ok());
        }
        "generator" => {
            let items: Vec<u32> = count_to::remote(5).map(|r| prism::get(&r).unwrap()).collect();
            println!("items: {items:?}");
            let items: Vec<String> = fail_after::remote(2).map(|r| show(prism::get(&r))).collect();
            println!("failing: {items:?}");
            let retried = flaky_generator::remote_with(&Options::new().max_retries(1), "g".to_string());
            println!("retried: {:?}", retried.map(|r| prism::get(&r).unwrap()).collect::<Vec<_>>());
            let mut slow = slow_items::remote(300);
            println!("timeout: {}", show(slow.next_timeout(Duration::from_millis(20))));
            println!("then: {:?}", slow.map(|r| prism::get(&r).unwrap()).collect::<Vec<_>>());
            let unknown: prism::Generator<u32> =
                prism::__private::remote_generator("nope", Vec::new(), &Options::new());
            println!("unknown: {:?}", unknown.map(|r| show(prism::get(&r))).collect::<Vec<_>>());
            let outside = prism::wit::prism::core::tasks::yield_item((0, 0, 0, 0));
            println!("yield outside a generator: {}", show(outside.map_err(prism::Error::from)));
        }
        "panic" => panic!("the driver gives up"),
        "exit" => std::process::exit(3),
        other => {
            eprintln!("unknown case `{other}`");
            std::process::exit(2);
        }
    }
}
