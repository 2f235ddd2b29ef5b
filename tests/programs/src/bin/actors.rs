//! Ray's actor semantics, one case per argument: `prism run actors.wasm -- CASE`.
//! tests/all/actors.rs asserts what each case prints.

use std::time::Duration;

#[path = "../common.rs"]
mod common;
use common::{show, value_after};

use prism::{Actor, ActorOptions, Error, Global, ObjectRef};

#[prism::actor]
struct Log {
    items: Vec<i64>,
}

#[prism::actor]
impl Log {
    fn new() -> Self {
        Log { items: Vec::new() }
    }

    fn append(&mut self, x: i64) -> usize {
        self.items.push(x);
        self.items.len()
    }

    fn items(&self) -> Vec<i64> {
        self.items.clone()
    }

    /// Streams its items, one at a time.
    fn each(&self) -> impl Iterator<Item = i64> {
        self.items.clone().into_iter()
    }

    /// Streams its items, then fails.
    fn each_then_fail(&self) -> impl Iterator<Item = Result<i64, String>> {
        self.items.clone().into_iter().map(Ok).chain(std::iter::once(Err("no more items".to_string())))
    }

    fn refuse(&self) -> Result<i64, String> {
        Err("refused on purpose".to_string())
    }

    fn crash(&mut self) -> i64 {
        panic!("log crashed on purpose")
    }

    fn spin(&mut self) -> i64 {
        let mut n: i64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn hoard(&mut self) -> usize {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            kept.push(vec![1u8; 8 << 20]);
            std::hint::black_box(&kept);
        }
    }

    /// Calls another actor and waits for it: nested gets must not deadlock.
    fn relay(&mut self, other: Actor<Log>, x: i64) -> usize {
        prism::get(&other.append(x).remote()).unwrap()
    }
}

#[prism::actor]
struct Broken;

#[prism::actor]
impl Broken {
    fn new(reason: String) -> Result<Self, String> {
        Err(reason)
    }

    fn hello(&self) -> String {
        "unreachable".into()
    }
}

/// Traps on the first call with a given key in the job, then works.
#[prism::actor]
struct Flaky;

#[prism::actor]
impl Flaky {
    fn new() -> Self {
        Flaky
    }

    fn once(&self, key: String) -> String {
        let tried = Global::<bool>::new(Box::leak(key.into_boxed_str()));
        if tried.get().is_err() {
            tried.set(&true).unwrap();
            panic!("first call crashes");
        }
        "second call works".into()
    }
}

/// An actor that creates an actor: the child is owned by it.
#[prism::actor]
struct Supervisor {
    child: Actor<Log>,
}

#[prism::actor]
impl Supervisor {
    fn new(child_name: String) -> Self {
        Supervisor { child: Log::remote_with(&ActorOptions::new().name(child_name)).unwrap() }
    }

    fn child_append(&self, x: i64) -> usize {
        prism::get(&self.child.append(x).remote()).unwrap()
    }
}

/// A task that uses an actor it was handed, or finds one by name.
#[prism::remote]
fn append_from_task(log: Actor<Log>, x: i64) -> usize {
    prism::get(&log.append(x).remote()).unwrap()
}

#[prism::remote]
fn append_by_name(name: String, x: i64) -> Result<usize, Error> {
    let log: Actor<Log> = prism::get_actor(&name)?;
    prism::get(&log.append(x).remote())
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "order" => {
            // 100 calls whose arguments become ready in random order.
            let log = Log::remote();
            let mut seed: u64 = 42;
            let results: Vec<ObjectRef<usize>> = (0..100)
                .map(|i| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    log.append(value_after::remote((seed >> 33) % 40, i)).remote()
                })
                .collect();
            prism::get_all(&results).unwrap();
            let items = prism::get(&log.items().remote()).unwrap();
            println!("in submission order: {}", items == (0..100).collect::<Vec<_>>());
        }
        "callers" => {
            // The driver's call waits on a slow argument; a task's call to the
            // same actor must not wait behind it.
            let log = Log::remote();
            let slow = log.append(value_after::remote(3000, 1)).remote();
            let other = append_from_task::remote(log.clone(), 2);
            println!("other caller served first: {}", show(prism::get_timeout(&other, Duration::from_millis(2000))));
            prism::get(&slow).unwrap();
            println!("items: {:?}", prism::get(&log.items().remote()).unwrap());
        }
        "restart" => {
            let log = Log::remote_with(&ActorOptions::new().max_restarts(1)).unwrap();
            println!("append: {}", show(prism::get(&log.append(7).remote())));
            println!("crash: {}", show(prism::get(&log.crash().remote())));
            println!("after restart: {}", show(prism::get(&log.items().remote())));
            println!("crash again: {}", show(prism::get(&log.crash().remote())));
            println!("budget spent: {}", show(prism::get(&log.items().remote())));
        }
        "task-retries" => {
            let retried = Flaky::remote_with(&ActorOptions::new().max_restarts(1).max_task_retries(1)).unwrap();
            println!("at-least-once: {}", show(prism::get(&retried.once("a".to_string()).remote())));
            let once = Flaky::remote_with(&ActorOptions::new().max_restarts(1)).unwrap();
            let first = prism::get(&once.once("b".to_string()).remote());
            println!("at-most-once: {}", first.map(|_| "ok").unwrap_or("the call failed"));
            println!("next call: {}", show(prism::get(&once.once("b".to_string()).remote())));
        }
        "kill" => {
            let log = Log::remote();
            prism::get(&log.append(1).remote()).unwrap();
            let slow = log.append(value_after::remote(300, 2)).remote();
            log.kill().unwrap();
            println!("queued: {}", show(prism::get(&slow)));
            println!("after kill: {}", show(prism::get(&log.items().remote())));
        }
        "kill-restart" => {
            // Ray's `ray.kill(a, no_restart=False)`: a fresh instance, same id and name.
            let log = Log::remote_with(&ActorOptions::new().name("phoenix").max_restarts(1)).unwrap();
            prism::get(&log.append(1).remote()).unwrap();
            log.restart().unwrap();
            println!("after restart: {}", show(prism::get(&log.items().remote())));
            let found: Actor<Log> = prism::get_actor("phoenix").unwrap();
            println!("name kept: {}", show(prism::get(&found.append(2).remote())));
            log.restart().unwrap();
            println!("restarts spent: {}", show(prism::get(&log.items().remote())));
        }
        "generator-methods" => {
            let log = Log::remote();
            prism::get_all(&[log.append(4).remote(), log.append(5).remote()]).unwrap();
            let items: Vec<i64> = log.each().remote().map(|r| prism::get(&r).unwrap()).collect();
            println!("streamed: {items:?}");
            let mut stream = log.each_then_fail().remote();
            let mut seen = Vec::new();
            let end = loop {
                match stream.next_timeout(Duration::from_secs(30)) {
                    Ok(Some(r)) => seen.push(show(prism::get(&r))),
                    Ok(None) => break "ended".to_string(),
                    Err(e) => break format!("error {e}"),
                }
            };
            println!("then fails: {seen:?}, {end}");
            println!("still serves: {}", show(prism::get(&log.append(6).remote())));
        }
        "unhandled" => {
            let log = Log::remote();
            let refused = log.refuse().remote();
            prism::wait(std::slice::from_ref(&refused)).unwrap();
            drop(refused);
            println!("read: {}", show(prism::get(&log.refuse().remote())));
        }
        "constructor" => {
            let broken = Broken::remote("no configuration".to_string());
            println!("call: {}", show(prism::get(&broken.hello().remote())));
            println!("again: {}", show(prism::get(&broken.hello().remote())));
        }
        "named" => {
            let log = Log::remote_with(&ActorOptions::new().name("registry")).unwrap();
            println!("by name from a task: {}", show(prism::get(&append_by_name::remote("registry".to_string(), 5))));
            println!("handle to a task: {}", show(prism::get(&append_from_task::remote(log.clone(), 6))));
            println!("items: {:?}", prism::get(&log.items().remote()).unwrap());
            let taken = Log::remote_with(&ActorOptions::new().name("registry"));
            println!("name taken: {}", show(taken.map(|_| ())));
            println!("unknown name: {}", show(prism::get_actor::<Log>("nobody").map(|_| ())));
        }
        "isolation" => {
            let (a, b) = (Log::remote(), Log::remote());
            println!("a crashes: {}", show(prism::get(&a.crash().remote()).map(|_| ())));
            println!("a after: {}", show(prism::get(&a.items().remote())));
            println!("b serves: {}", show(prism::get(&b.append(3).remote())));
            println!("actor to actor: {}", show(prism::get(&b.relay(Log::remote(), 9).remote())));
        }
        "owned-by-actor" => {
            let supervisor = Supervisor::remote("child".to_string());
            println!("child works: {}", show(prism::get(&supervisor.child_append(1).remote())));
            supervisor.kill().unwrap();
            let gone = (0..200).any(|_| {
                std::thread::sleep(Duration::from_millis(10));
                prism::get_actor::<Log>("child").is_err()
            });
            println!("child ended with its creator: {gone}");
        }
        "limits" => {
            let (spinner, hoarder, bystander) = (Log::remote(), Log::remote(), Log::remote());
            println!("endless loop: {}", show(prism::get(&spinner.spin().remote())));
            println!("memory bomb: {}", show(prism::get(&hoarder.hoard().remote())));
            println!("bystander: {}", show(prism::get(&bystander.append(1).remote())));
        }
        "slots" => {
            // Each actor holds an instance slot for life: past what the node
            // has, creating one fails at once rather than wait for ever.
            let mut held = Vec::new();
            let refused = loop {
                match Log::remote_with(&ActorOptions::new()) {
                    Ok(log) => held.push(log),
                    Err(err) => break err,
                }
            };
            println!("created {}, then: {refused}", held.len());
            // Once constructed, they hold their slots.
            prism::get_all(&held.iter().map(|log| log.items().remote()).collect::<Vec<_>>()).unwrap();
            // Every slot is the driver's or an actor's: a task waits, and says so.
            println!("task: {}", show(prism::get(&value_after::remote(0, 1))));
        }
        "forgotten" => {
            // The node remembers this many dead actors, then forgets the oldest.
            let kept: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).expect("how many are kept");
            let dead: Vec<prism::Actor<Log>> = (0..=kept)
                .map(|_| {
                    // A killed actor counts as alive until it has shut down.
                    let log = loop {
                        match Log::remote_with(&ActorOptions::new()) {
                            Ok(log) => break log,
                            Err(prism::Error::LimitExceeded(_)) => std::thread::sleep(Duration::from_millis(1)),
                            Err(other) => panic!("{other}"),
                        }
                    };
                    log.kill().unwrap();
                    log
                })
                .collect();
            // Once all have shut down, the first to do so is forgotten.
            let count = || {
                let answers: Vec<_> = dead.iter().map(|log| show(prism::get(&log.items().remote()))).collect();
                let forgotten = answers.iter().filter(|a| a.contains("not found")).count();
                (forgotten, answers.iter().filter(|a| a.ends_with("actor died: it was killed")).count())
            };
            let mut counts = count();
            for _ in 0..100 {
                if counts.0 > 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                counts = count();
            }
            println!("forgotten: {}, remembered as killed: {}", counts.0, counts.1);
        }
        "lifetime" => {
            // The test checks from the host which of these outlive the job.
            let owned = Log::remote_with(&ActorOptions::new().name("owned")).unwrap();
            let kept = Log::remote_with(&ActorOptions::new().name("kept").detached(true)).unwrap();
            prism::get_all(&[owned.append(1).remote(), kept.append(2).remote()]).unwrap();
            println!("both alive");
        }
        other => {
            eprintln!("unknown case `{other}`");
            std::process::exit(2);
        }
    }
}
