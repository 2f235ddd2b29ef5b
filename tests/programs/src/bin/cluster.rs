//! Tasks and a driver for tests/all/cluster.rs, run with `--cluster`.
//!
//! `cluster.wasm -- squares N`: N squares, summed;
//! `cluster.wasm -- slow N MS`: N tasks of MS ms of cpu each, their results
//! checked, with a line for each as it ends;
//! `cluster.wasm -- big MIB`: a MIB-MiB byte string put here, read twice by
//! tasks on other nodes (mapped);
//! `cluster.wasm -- made MIB`: a MIB-MiB byte string made by a task, read by
//! another; `cluster.wasm -- tally N MS`: an actor on a node, called N
//! times, each call MS ms of cpu, then a named one found and killed;
//! `cluster.wasm -- greedy`: a task asking for 64 cpus;
//! `cluster.wasm -- resources`: tasks and an actor asking for `gpu=1`, which
//! one node has; `cluster.wasm -- pin`: tasks pinned to a node (node
//! affinity). Both run on one node too, with `--resources gpu=1`;
//! `cluster.wasm -- lost NODE`: values left on node NODE, read once the test
//! has killed it: rebuilt by lineage, or lost if made by `put`;
//! `cluster.wasm -- churn N MIB`: N values of MIB MiB made on nodes, half
//! of them read here, each let go of at once, then 5 minutes idle;
//! `cluster.wasm -- relay FROM TO`: a value made on node FROM, read by a
//! task on node TO, then here once the test has killed FROM;
//! `cluster.wasm -- keep-named NAME`: an actor named NAME, kept until
//! another driver, `cluster.wasm -- use-named NAME`, finds it, calls it
//! (and so does its task on a node) and kills it; `cluster.wasm -- lean-on NAME` calls it until it fails;
//! `cluster.wasm -- claim NAME`: makes an actor named NAME if no driver has
//! one;
//! `cluster.wasm -- generate PLAIN`: generator tasks on nodes, one asking
//! for `gpu=1`, and generators started by a task pinned to node PLAIN;
//! `cluster.wasm -- nested-large ON OTHER MIB`: a task on node ON reads
//! MIB MiB that a task it starts on node OTHER makes;
//! `cluster.wasm -- big-actor MIB`: a task makes an actor from MIB MiB it
//! made;
//! `cluster.wasm -- fan-out N MS`: a task on a node starting N
//! tasks of MS ms, which spread over the cluster;
//! `cluster.wasm -- cancel`: endless tasks on a two-cpu cluster, cancelled
//! from the driver and from a task on a node, each time followed by a task
//! that needs both cpus; `cluster.wasm -- spin N`: N endless tasks, waited
//! for (the test kills this driver).

use std::time::{Duration, Instant};

use prism::{Bytes, View};

#[prism::remote]
fn square(x: u64) -> u64 {
    x * x
}

/// Busy for `ms` ms of cpu, then returns `i`.
#[prism::remote]
fn slow(i: u64, ms: u64) -> u64 {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut n = 0u64;
    while Instant::now() < end {
        n = std::hint::black_box(n.wrapping_add(1));
    }
    i
}

/// Its length, the sum of its bytes, and whether it was mapped.
#[prism::remote]
fn checksum(data: View) -> (u64, u64, bool) {
    (data.len() as u64, data.iter().map(|&b| u64::from(b)).sum(), data.is_mapped())
}

/// `mib` MiB of a repeating pattern.
#[prism::remote]
fn make(mib: u64) -> Bytes {
    Bytes::from(pattern(mib))
}

/// A counter whose instance lives on a node.
#[prism::actor]
struct Tally {
    total: u64,
}

#[prism::actor]
impl Tally {
    fn new() -> Self {
        Tally { total: 0 }
    }

    /// Adds `n` after `ms` ms of cpu; the new total.
    fn add(&mut self, n: u64, ms: u64) -> u64 {
        slow(0, ms);
        self.total += n;
        self.total
    }

    /// The total plus 1, 2, … `n`, and the node it runs on.
    fn count_on(&self, n: u64) -> impl Iterator<Item = (String, u64)> {
        let total = self.total;
        (1..=n).map(move |i| (prism::node_id(), total + i))
    }
}

#[prism::remote]
fn greedy() -> u64 {
    64
}

/// The node it runs on, after `ms` ms of cpu.
#[prism::remote]
fn where_am_i(ms: u64) -> String {
    slow(0, ms);
    prism::node_id()
}

/// Part `i`: `mib` MiB of its own pattern, made (a line says so) where it
/// runs, and left there.
#[prism::remote]
fn part(i: u64, mib: u64) -> Bytes {
    println!("made part {i}");
    Bytes::from(part_pattern(i, mib))
}

fn part_pattern(i: u64, mib: u64) -> Vec<u8> {
    (0..mib << 20).map(|j| ((j + i) % 251) as u8).collect()
}

/// A byte string `put` on the node it runs on, returned by ref.
#[prism::remote]
fn stash(mib: u64) -> prism::ObjectRef<Bytes> {
    prism::put_bytes(&pattern(mib)).unwrap()
}

/// Values left on `victim`, read after it died: the parts are rebuilt by
/// running their tasks again; the stashed `put` is lost.
fn lost(victim: &str) {
    let there = prism::Options::new().node_affinity(victim, true);
    let parts: Vec<_> = (0..4).map(|i| part::remote_with(&there, i, 1)).collect();
    let stashed = prism::get(&stash::remote_with(&there, 1)).unwrap();
    // Until the test kills it: the parts and the stash are done by now.
    let probe = prism::Options::new().node_affinity(victim, false).max_retries(0);
    while prism::get(&where_am_i::remote_with(&probe, 0)).is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("the stash: {}", prism::get(&stashed).map(|b| b.len()).unwrap_err());
    let right = parts.iter().enumerate().all(|(i, r)| prism::get(r).unwrap().as_ref() == part_pattern(i as u64, 1));
    println!("the parts, rebuilt: {right}");
}

/// A value left on node `from` and read by a task on node `to`, which pulls
/// it from `from` itself; read again after the test killed `from`. If this
/// node had fetched it to send it on, that read would find it here; instead
/// it is rebuilt.
fn relay(from: &str, to: &str) {
    let made = part::remote_with(&prism::Options::new().node_affinity(from, true), 7, 8);
    let there = prism::Options::new().node_affinity(to, false);
    let (len, sum, mapped) = prism::get(&checksum::remote_with(&there, &made)).unwrap();
    let expected: u64 = part_pattern(7, 8).iter().map(|&b| u64::from(b)).sum();
    println!("read on the other node: {len} bytes, sum ok: {}, mapped: {mapped}", sum == expected);
    let probe = prism::Options::new().node_affinity(from, false).max_retries(0);
    while prism::get(&where_am_i::remote_with(&probe, 0)).is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // `to` cannot pull it any more (or this node knows `from` is dead): it
    // is rebuilt, and sent from here.
    let (len, sum, _) = prism::get(&checksum::remote_with(&there, &made)).unwrap();
    println!("read there again once its node died: {len} bytes, sum ok: {}", sum == expected);
    println!("read here, right: {}", prism::get(&made).unwrap().as_ref() == part_pattern(7, 8));
}

/// Reads `mib` MiB that a task it starts on node `other` makes: their
/// length, and whether their sum is right.
#[prism::remote]
fn read_made_on(other: String, mib: u64) -> (u64, bool) {
    let made = make::remote_with(&prism::Options::new().node_affinity(&other, false), mib);
    let bytes = prism::get(&made).unwrap();
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    (bytes.len() as u64, sum == pattern(mib).iter().map(|&b| u64::from(b)).sum::<u64>())
}

/// Makes a `Tally` named `name` holding 5, from a task (on a node): the
/// driver keeps it, so its name is known across the cluster.
#[prism::remote]
fn make_named(name: String) -> u64 {
    let tally = Tally::remote_with(&prism::ActorOptions::new().name(&name)).unwrap();
    prism::get(&tally.add(5, 0).remote()).unwrap()
}

/// What the `Tally` named `name` holds, as a task (on a node) finds it.
#[prism::remote]
fn holding(name: String) -> u64 {
    let tally: prism::Actor<Tally> = prism::get_actor(&name).unwrap();
    prism::get(&tally.add(0, 0).remote()).unwrap()
}

/// Keeps a `Tally` named `name` holding 5 until another driver kills it.
fn keep_named(name: &str) {
    let tally = Tally::remote_with(&prism::ActorOptions::new().name(name)).unwrap();
    println!("total {}", prism::get(&tally.add(5, 0).remote()).unwrap());
    wait_for_kill(&tally);
}

/// A task makes a `Tally` named `name` holding 5; this driver and another
/// task find it by name; it is kept until another driver kills it.
fn named_by_task(name: &str) {
    println!("a task made it: total {}", prism::get(&make_named::remote(name.to_string())).unwrap());
    let tally: prism::Actor<Tally> = prism::get_actor(name).unwrap();
    println!("the driver finds it holding {}", prism::get(&tally.add(0, 0).remote()).unwrap());
    println!("a task finds it holding {}", prism::get(&holding::remote(name.to_string())).unwrap());
    wait_for_kill(&tally);
}

/// Calls `tally` until it fails: another driver killed it.
fn wait_for_kill(tally: &prism::Actor<Tally>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while prism::get(&tally.add(0, 0).remote()).is_ok() {
        assert!(Instant::now() < deadline, "no other driver killed it");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("killed by another driver");
}

/// The `Tally` another driver keeps as `name`, once it holds 5.
fn find_holding_5(name: &str) -> prism::Actor<Tally> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match prism::get_actor::<Tally>(name) {
            Ok(tally) if prism::get(&tally.add(0, 0).remote()).unwrap() == 5 => break tally,
            _ => assert!(Instant::now() < deadline, "never found `{name}` holding 5"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finds the `Tally` another driver keeps as `name`, once it holds 5; adds
/// to it and kills it.
fn use_named(name: &str) {
    println!("{}", prism::get_actor::<Tally>("nobody").map(drop).unwrap_err());
    let tally = find_holding_5(name);
    println!("found {name} holding 5");
    println!("total {}", prism::get(&tally.add(1, 0).remote()).unwrap());
    let counted: Vec<u64> = tally.count_on(2).remote().map(|r| prism::get(&r).unwrap().1).collect();
    println!("its generator method yields {counted:?}");
    println!("a task finds it holding {}", prism::get(&holding::remote(name.to_string())).unwrap());
    tally.kill().unwrap();
    println!("killed");
}

/// Makes a `Tally` named `name`, unless another driver keeps one.
fn claim(name: &str) {
    match Tally::remote_with(&prism::ActorOptions::new().name(name)) {
        Ok(tally) => println!("claimed {name}, total {}", prism::get(&tally.add(1, 0).remote()).unwrap()),
        Err(e) => println!("refused: {e}"),
    }
}

/// Finds the `Tally` another driver keeps as `name`, once it holds 5, and
/// calls it until it fails (the test kills that driver).
fn lean_on(name: &str) {
    let tally = find_holding_5(name);
    println!("found {name} holding 5");
    let failed = loop {
        if let Err(e) = prism::get(&tally.add(0, 0).remote()) {
            break e;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("once its driver died: {failed}");
}

/// Yields `n` items: the node it runs on, and its number, each after `ms`
/// ms of cpu.
#[prism::remote]
fn stream_from_node(n: u64, ms: u64) -> impl Iterator<Item = (String, u64)> {
    (0..n).map(move |i| (where_am_i_now(ms), i))
}

fn where_am_i_now(ms: u64) -> String {
    slow(0, ms);
    prism::node_id()
}

/// From a task on a node: the nodes a generator task asking for `gpu=1`
/// ran on (the driver places it), and what a generator method of `tally`,
/// the driver's actor, yields.
#[prism::remote]
fn generators_from_a_task(tally: prism::Actor<Tally>) -> (String, Vec<String>, Vec<u64>) {
    let gpu = prism::Options::new().resource("gpu", 1.0);
    let ran_on = stream_from_node::remote_with(&gpu, 3, 0).map(|r| prism::get(&r).unwrap().0).collect();
    let counted = tally.count_on(3).remote().map(|r| prism::get(&r).unwrap().1).collect();
    (prism::node_id(), ran_on, counted)
}

/// Generator tasks on nodes: their items stream back in order, and one
/// asking for `gpu=1` runs where the gpu is; so does a generator method of
/// an actor on a node. A task pinned to node `plain` starts generators too.
fn generate(plain: &str) {
    let here = prism::node_id();
    let items: Vec<(String, u64)> = stream_from_node::remote(5, 20).map(|r| prism::get(&r).unwrap()).collect();
    let numbers: Vec<u64> = items.iter().map(|(_, i)| *i).collect();
    println!("items in order: {numbers:?}");
    println!("ran on one node, not the driver's: {}", items.iter().all(|(n, _)| *n == items[0].0 && *n != here));
    let gpu = prism::Options::new().resource("gpu", 1.0);
    let on_gpu: Vec<String> =
        stream_from_node::remote_with(&gpu, 3, 0).map(|r| prism::get(&r).unwrap().0).collect::<Vec<_>>();
    println!("gpu generator ran on: {}", on_gpu[0]);
    let tally = Tally::remote();
    prism::get(&tally.add(10, 0).remote()).unwrap();
    let counted: Vec<(String, u64)> = tally.count_on(3).remote().map(|r| prism::get(&r).unwrap()).collect();
    let numbers: Vec<u64> = counted.iter().map(|(_, i)| *i).collect();
    println!("an actor's generator method on a node: {numbers:?}, not on the driver's: {}", counted[0].0 != here);
    let pinned = prism::Options::new().node_affinity(plain, false);
    let (task_on, ran_on, counted) = prism::get(&generators_from_a_task::remote_with(&pinned, tally.clone())).unwrap();
    let on_gpu = ran_on.iter().all(|node| *node == on_gpu[0]);
    println!(
        "from a task on {}: gpu generator ran on the gpu's node: {on_gpu}",
        if task_on == plain { "plain" } else { "?" }
    );
    println!("from a task: the actor's generator method: {counted:?}");
}

/// Starts `n` tasks of `ms` ms of cpu each and waits for them: the number
/// of distinct nodes they ran on, and whether one of them ran here.
#[prism::remote]
fn fan_out(n: u64, ms: u64) -> (u64, bool) {
    let children: Vec<_> = (0..n).map(|_| where_am_i::remote(ms)).collect();
    let mut ran_on = prism::get_all(&children).unwrap();
    let here = ran_on.contains(&prism::node_id());
    ran_on.sort();
    ran_on.dedup();
    (ran_on.len() as u64, here)
}

/// Never returns: busy until it is cancelled (or its cpu deadline).
#[prism::remote]
fn spin() -> u64 {
    loop {
        std::hint::black_box(0u64);
    }
}

/// Yields one item, then spins.
#[prism::remote]
fn spin_after_one() -> impl Iterator<Item = u64> {
    std::iter::once(1).chain(std::iter::from_fn(|| Some(spin())))
}

/// Starts a spinning task, yields one item, then waits for that task.
#[prism::remote]
fn parent_of_spin() -> impl Iterator<Item = u64> {
    let child = spin::remote();
    std::iter::once(1).chain(std::iter::from_fn(move || prism::get(&child).ok()))
}

/// Starts a spinning task, lets it run (blocked, this task lends its cpu),
/// cancels it and says how its `get` ended.
#[prism::remote]
fn cancel_child() -> String {
    let child = spin::remote();
    let waited = prism::get_timeout(&child, Duration::from_millis(500));
    prism::cancel(&child, true).unwrap();
    format!("waited: {}, then: {}", outcome(waited), outcome(prism::get(&child)))
}

/// Starts a generator that spins after its first item, takes that item,
/// cancels it and says how its next item ended.
#[prism::remote]
fn cancel_child_generator() -> String {
    let mut child = spin_after_one::remote();
    let first = child.next().map(|item| prism::get(&item));
    child.cancel().unwrap();
    let ended = child.next_timeout(Duration::from_secs(20)).map(|_| ());
    format!("first: {first:?}, then: {}", outcome(ended))
}

/// How a `get` ended, in a word.
fn outcome<T: std::fmt::Debug>(got: prism::Result<T>) -> String {
    match got {
        Err(prism::Error::Cancelled(_)) => "cancelled".into(),
        Err(prism::Error::Timeout) => "timeout".into(),
        other => format!("{other:?}"),
    }
}

/// Cancels endless tasks on a two-cpu cluster; after each, a task that
/// needs both cpus shows that nothing cancelled still holds one.
fn cancel() {
    let both = prism::Options::new().num_cpus(2);
    let probe = || outcome(prism::get_timeout(&square::remote_with(&both, 3), Duration::from_secs(20)));
    let mut spinning = spin_after_one::remote();
    spinning.next().expect("its first item");
    spinning.cancel().unwrap();
    let ended = spinning.next_timeout(Duration::from_secs(20)).map(|_| ());
    println!("a generator on a node, cancelled from the driver: {}; then {}", outcome(ended), probe());
    let mut parent = parent_of_spin::remote();
    parent.next().expect("its first item");
    parent.cancel().unwrap();
    println!("a task on a node and the task it started, cancelled from the driver: then {}", probe());
    println!("a task on a node cancelling the task it started: {}", prism::get(&cancel_child::remote()).unwrap());
    println!("then {}", probe());
    println!(
        "a task on a node cancelling the generator it started: {}",
        prism::get(&cancel_child_generator::remote()).unwrap()
    );
    println!("then {}", probe());
}

/// An actor made from a byte string: its length and the sum of its bytes.
#[prism::actor]
struct Summed {
    len: u64,
    sum: u64,
}

#[prism::actor]
impl Summed {
    fn new(data: View) -> Self {
        Summed { len: data.len() as u64, sum: data.iter().map(|&b| u64::from(b)).sum() }
    }

    fn read(&self) -> (u64, u64) {
        (self.len, self.sum)
    }
}

/// Makes `mib` MiB here and an actor from them (the driver's node, which
/// keeps the actor, pulls them first): what the actor read, and whether
/// its sum is right.
#[prism::remote]
fn actor_of_big(mib: u64) -> (u64, bool) {
    let data = pattern(mib);
    let expected: u64 = data.iter().map(|&b| u64::from(b)).sum();
    let made = prism::put_bytes(&data).unwrap();
    drop(data);
    let summed = Summed::remote_with(&prism::ActorOptions::new(), &made).unwrap();
    let (len, sum) = prism::get(&summed.read().remote()).unwrap();
    (len, sum == expected)
}

/// An actor that holds what it was created with for as long as it lives.
#[prism::actor]
struct Holder;

#[prism::actor]
impl Holder {
    fn new() -> Self {
        Holder
    }

    fn node(&self) -> String {
        prism::node_id()
    }
}

/// The distinct nodes `refs` ran on, sorted, comma-separated.
fn nodes(refs: &[prism::ObjectRef<String>]) -> String {
    let mut ids = prism::get_all(refs).unwrap();
    ids.sort();
    ids.dedup();
    ids.join(",")
}

/// Ray's custom resources: tasks go where `gpu` is, and an actor holding it
/// keeps tasks that ask for it waiting until it is gone.
fn resources() {
    let gpu = || prism::Options::new().resource("gpu", 1.0);
    let refs: Vec<_> = (0..6).map(|_| where_am_i::remote_with(&gpu(), 20)).collect();
    println!("gpu tasks ran on: {}", nodes(&refs));
    let holder = Holder::remote_with(&prism::ActorOptions::new().resource("gpu", 1.0)).unwrap();
    println!("gpu actor lives on: {}", prism::get(&holder.node().remote()).unwrap());
    let waiting = where_am_i::remote_with(&gpu(), 0);
    let meanwhile = prism::get_timeout(&waiting, Duration::from_secs(1));
    println!("a gpu task while the actor lives: {}", meanwhile.map_err(|e| e.to_string()).unwrap_err());
    holder.kill().unwrap();
    println!("once the actor is killed, it ran on: {}", prism::get(&waiting).unwrap());
    let halves: Vec<_> =
        (0..4).map(|_| where_am_i::remote_with(&prism::Options::new().resource("gpu", 0.5), 0)).collect();
    println!("half-gpu tasks ran on: {}", nodes(&halves));
    let tpu = where_am_i::remote_with(&prism::Options::new().resource("tpu", 1.0).max_retries(0), 0);
    println!("a tpu task: {}", prism::get(&tpu).unwrap_err());
}

/// Node affinity: hard pins a task, soft prefers a node but goes on without it.
fn pin() {
    let spread: Vec<_> = (0..12).map(|_| where_am_i::remote(50)).collect();
    let seen = nodes(&spread);
    println!("nodes seen: {}", seen.split(',').count());
    let target = seen.split(',').next_back().unwrap().to_string();
    let pinned: Vec<_> =
        (0..6).map(|_| where_am_i::remote_with(&prism::Options::new().node_affinity(&target, false), 10)).collect();
    println!("pinned tasks ran on the node they name: {}", nodes(&pinned) == target);
    let soft = where_am_i::remote_with(&prism::Options::new().node_affinity("gone", true), 0);
    println!("soft affinity to a node that is not there: ran on {} nodes", nodes(&[soft]).split(',').count());
    let hard = where_am_i::remote_with(&prism::Options::new().node_affinity("gone", false).max_retries(0), 0);
    println!("hard affinity to a node that is not there: {}", prism::get(&hard).unwrap_err());
}

fn pattern(mib: u64) -> Vec<u8> {
    (0..mib << 20).map(|i| (i % 251) as u8).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok()).expect("a number argument");
    match args.first().map(String::as_str) {
        Some("squares") => {
            let refs: Vec<_> = (0..number(1)).map(square::remote).collect();
            println!("sum {}", prism::get_all(&refs).unwrap().iter().sum::<u64>());
        }
        Some("slow") => {
            let refs: Vec<_> = (0..number(1)).map(|i| slow::remote(i, number(2))).collect();
            for (i, r) in refs.iter().enumerate() {
                assert_eq!(prism::get(r).unwrap(), i as u64);
                println!("done {i}");
            }
            println!("all {} done", refs.len());
        }
        Some("big") => {
            let data = pattern(number(1));
            let expected: u64 = data.iter().map(|&b| u64::from(b)).sum();
            let r = prism::put_bytes(&data).unwrap();
            drop(data);
            for _ in 0..2 {
                let (len, sum, mapped) = prism::get(&checksum::remote(&r)).unwrap();
                println!("read {len} bytes, sum ok: {}, mapped: {mapped}", sum == expected);
            }
        }
        Some("big-actor") => {
            // Not retried: a retry would find the arguments pulled already.
            let once = prism::Options::new().max_retries(0);
            let (len, sum) = prism::get(&actor_of_big::remote_with(&once, number(1))).unwrap();
            println!("an actor a task made from {len} bytes, sum ok: {sum}");
        }
        Some("made") => {
            let expected: u64 = pattern(number(1)).iter().map(|&b| u64::from(b)).sum();
            let made = make::remote(number(1));
            let (len, sum, mapped) = prism::get(&checksum::remote(&made)).unwrap();
            println!("read {len} bytes, sum ok: {}, mapped: {mapped}", sum == expected);
        }
        Some("tally") => {
            // Calls in order; after its node dies the actor restarts
            // elsewhere, from a fresh total.
            let options = prism::ActorOptions::new().max_restarts(3).max_task_retries(3);
            let tally = Tally::remote_with(&options).unwrap();
            for _ in 0..number(1) {
                println!("total {}", prism::get(&tally.add(1, number(2)).remote()).unwrap());
            }
            let named = prism::ActorOptions::new().name("tally");
            let _kept = Tally::remote_with(&named).unwrap();
            let found: prism::Actor<Tally> = prism::get_actor("tally").unwrap();
            println!("named {}", prism::get(&found.add(7, 0).remote()).unwrap());
            found.kill().unwrap();
            println!("after kill: {:?}", prism::get(&found.add(1, 0).remote()).map_err(|_| "actor died"));
        }
        Some("greedy") => {
            println!("{:?}", prism::get(&greedy::remote_with(&prism::Options::new().num_cpus(64))));
        }
        Some("resources") => resources(),
        Some("pin") => pin(),
        Some("lost") => lost(&args[1]),
        Some("relay") => relay(&args[1], &args[2]),
        Some("keep-named") => keep_named(&args[1]),
        Some("nested-large") => {
            let on = prism::Options::new().node_affinity(&args[1], false);
            let (len, sum) = prism::get(&read_made_on::remote_with(&on, args[2].clone(), number(3))).unwrap();
            println!("read {len} bytes made on the other node, sum ok: {sum}");
        }
        Some("named-by-task") => named_by_task(&args[1]),
        Some("use-named") => use_named(&args[1]),
        Some("lean-on") => lean_on(&args[1]),
        Some("claim") => claim(&args[1]),
        Some("generate") => generate(&args[1]),
        Some("fan-out") => {
            let (nodes, _) = prism::get(&fan_out::remote(number(1), number(2))).unwrap();
            println!("the children ran on {nodes} nodes");
        }
        Some("cancel") => cancel(),
        Some("spin") => {
            let refs: Vec<_> = (0..number(1)).map(|_| spin::remote()).collect();
            prism::get_all(&refs).unwrap();
        }
        Some("churn") => {
            for i in 0..number(1) {
                let made = part::remote(i, number(2));
                if i % 2 == 0 {
                    assert_eq!(prism::get(&made).unwrap().len() as u64, number(2) << 20);
                }
            }
            // A blocking call hands the host the refs dropped since the last
            // one (the SDK batches them).
            prism::get(&square::remote(1)).unwrap();
            println!("churned");
            // Still there, holding nothing, while the test looks at the
            // nodes (it kills this driver).
            std::thread::sleep(Duration::from_secs(300));
        }
        _ => panic!(
            "usage: cluster.wasm -- squares N | slow N MS | big MIB | made MIB | greedy | resources | pin | lost NODE \
             | churn N MIB | relay FROM TO | keep-named NAME | named-by-task NAME | use-named NAME \
             | lean-on NAME | claim NAME | generate PLAIN | nested-large ON OTHER MIB | big-actor MIB | fan-out N MS | cancel | spin N"
        ),
    }
}
