//! A cluster of real `prism node` processes on a real nats-server (from
//! `host/cluster/setup.sh`), driven by `prism run --cluster`.

use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::{Run, guest, prism};

/// A nats-server with JetStream on, on a free loopback port, its store in
/// a temporary directory; killed when dropped.
pub struct Nats {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    _dir: TempDir,
}

/// Where setup put nats-server (or `PRISM_NATS_SERVER`).
fn nats_server() -> PathBuf {
    if let Some(path) = std::env::var_os("PRISM_NATS_SERVER") {
        return path.into();
    }
    let venv = std::env::var_os("PRISM_NATS").map(PathBuf::from).unwrap_or_else(|| {
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".local/share"));
        data.join("prism/nats")
    });
    let path = venv.join("bin/nats-server");
    assert!(path.exists(), "no nats-server at {}: run `bash host/cluster/setup.sh` first", path.display());
    path
}

impl Nats {
    pub fn start() -> Nats {
        Nats::start_at("127.0.0.1")
    }

    /// A nats-server listening on `host`.
    pub fn start_at(host: &str) -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind((host, 0)).unwrap().local_addr().unwrap().port();
        let child = Command::new(nats_server())
            .args(["-js", "-a", host, "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nats-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((host, port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, url: format!("nats://{host}:{port}"), port, _dir: dir }
    }

    /// Starts a node with `workers` cpus and waits until it is listed alive.
    pub fn node(&self, workers: u32) -> Node {
        self.node_in(None, workers, &[])
    }

    /// [`Nats::node`], in network namespace `netns` if given, with `extra`
    /// options.
    fn node_in(&self, netns: Option<&Netns>, workers: u32, extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_prism"));
        if let Some(netns) = netns {
            command = Command::new("ip");
            command.args(["netns", "exec", &netns.name, env!("CARGO_BIN_EXE_prism")]);
        }
        // From inside, the server is at this side's end of the link.
        let url = netns.map_or(self.url.clone(), |netns| format!("nats://{}:{}", netns.outside, self.port));
        command.args(["node", "--cluster", &url, "--workers", &workers.to_string()]).args(extra);
        if let Some(netns) = netns {
            command.args(["--transfer-listen", &format!("{}:0", netns.inside)]);
        }
        let mut child = command
            .env("PRISM_DATA_DIR", dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start prism node");
        let (tx, joined) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("node ").and_then(|rest| rest.split(' ').next()) {
                    let _ = tx.send(id.to_string());
                }
            }
        });
        let id = joined.recv_timeout(Duration::from_secs(30)).expect("the node did not join");
        let node = Node { child, id, joined, _dir: dir };
        self.wait_until(|nodes| alive(nodes, &node.id), "the node to be listed alive");
        node
    }

    /// `prism cluster status --json`.
    pub fn status(&self) -> Vec<Value> {
        let dir = tempfile::tempdir().unwrap();
        let run = prism(dir.path(), &["cluster", "status", "--cluster", &self.url, "--json"]);
        assert!(run.success, "{}", run.stderr);
        serde_json::from_str::<Vec<Value>>(&run.stdout).unwrap()
    }

    /// Polls the status until `done` says so (a minute at most).
    pub fn wait_until(&self, done: impl Fn(&[Value]) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.status()) {
            assert!(Instant::now() < deadline, "waited a minute for {what}: {:?}", self.status());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `prism run --cluster URL COMPONENT -- ARGS…`, with `extra` options.
    pub fn run(&self, component: &str, extra: &[&str], args: &[&str]) -> Run {
        self.spawn_run(component, extra, args).join().unwrap()
    }

    /// [`Nats::run`] on a thread of its own, to act on the cluster meanwhile.
    pub fn spawn_run(&self, component: &str, extra: &[&str], args: &[&str]) -> std::thread::JoinHandle<Run> {
        let mut argv: Vec<String> = vec!["run".into(), "--cluster".into(), self.url.clone()];
        argv.extend(extra.iter().map(|a| a.to_string()));
        argv.extend([component.to_string(), "--".into()]);
        argv.extend(args.iter().map(|a| a.to_string()));
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            prism(dir.path(), &argv.iter().map(String::as_str).collect::<Vec<_>>())
        })
    }
}

impl Nats {
    /// `prism run --cluster URL cluster.wasm -- ARGS…` as a process of its
    /// own, its stdout piped (read it with [`Driver::lines`]).
    fn driver(&self, args: &[&str]) -> Driver {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(["run", "--cluster", &self.url, guest!(CLUSTER), "--"])
            .args(args)
            .env("PRISM_DATA_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Driver { child, _dir: dir }
    }
}

/// A `prism run` process; killed when dropped.
struct Driver {
    child: Child,
    _dir: TempDir,
}

impl Driver {
    /// Its stdout, line by line, as it prints.
    fn lines(&mut self) -> impl Iterator<Item = String> + use<> {
        BufReader::new(self.child.stdout.take().unwrap()).lines().map_while(Result::ok)
    }

    /// `kill -9`.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `prism node` process; killed when dropped.
pub struct Node {
    child: Child,
    /// Its id in the cluster.
    pub id: String,
    /// The ids it joins under later (after being declared dead).
    joined: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Node {
    /// `kill -9`.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status, which must come within 10 s.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the node did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn entry<'a>(nodes: &'a [Value], id: &str) -> &'a Value {
    nodes.iter().find(|n| n["id"] == id).unwrap_or_else(|| panic!("node {id} is not listed: {nodes:?}"))
}

fn alive(nodes: &[Value], id: &str) -> bool {
    nodes.iter().any(|n| n["id"] == id && n["alive"] == true)
}

fn field(nodes: &[Value], id: &str, name: &str) -> u64 {
    entry(nodes, id)[name].as_u64().unwrap()
}

/// The heartbeats carry counters: wait until the status says `tasks` ran.
fn wait_for_tasks(nats: &Nats, nodes: &[&Node], tasks: u64) {
    let total = |status: &[Value]| nodes.iter().map(|n| field(status, &n.id, "tasks")).sum::<u64>();
    nats.wait_until(|status| total(status) >= tasks, "the nodes' task counters");
}

#[test]
fn ocr_pages_spread_over_three_nodes_and_come_back_in_order() {
    let nats = Nats::start();
    let nodes = [nats.node(1), nats.node(1), nats.node(1)];
    let run = nats.run(guest!(OCR), &[], &[]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, crate::run_ok(guest!(OCR), &[]), "the same pages, in the same order, as on one node");
    assert!(run.stdout.contains("12 of 12 pages recognized exactly"), "{}", run.stdout);
    let nodes: Vec<&Node> = nodes.iter().collect();
    wait_for_tasks(&nats, &nodes, 12);
    let status = nats.status();
    for node in &nodes {
        assert!(field(&status, &node.id, "tasks") > 0, "node {} ran no page: {status:?}", node.id);
    }
}

#[test]
fn the_seeds_programs_print_on_a_cluster_what_they_print_on_one_node() {
    let nats = Nats::start();
    let _nodes = [nats.node(1), nats.node(2)];
    // Values and refs nested in them, driver globals, output, generators,
    // actors, actors called by tasks on other nodes, and an actor made in
    // another's constructor on a node, which ends with it.
    for (guest, args) in [
        (guest!(PUT_GET), &[][..]),
        (guest!(ECHO), &[]),
        (guest!(ECHO_AND_GET), &[]),
        (guest!(NESTED_TASKS), &[]),
        (guest!(PRINT_VIA_CAPTURE), &[]),
        (guest!(GENERATOR), &["1"]),
        (guest!(COUNTER), &[]),
        (guest!(BANK), &[]),
        (guest!(OCR_ACTORS), &[]),
        (guest!(ACTORS), &["owned-by-actor"]),
    ] {
        let run = nats.run(guest, &[], args);
        assert!(run.success, "{guest}: {}\n{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, crate::run_ok(guest, args), "{guest}");
    }
}

#[test]
fn python_programs_print_on_a_cluster_what_they_print_on_one_node() {
    use crate::python::{SDK, example, run_py};
    let nats = Nats::start();
    let _nodes = [nats.node(1), nats.node(1)];
    // An actor; tasks reading driver globals they captured (each node
    // compiles the 18 MB component once: two programs keep this short).
    for name in ["counter", "print_via_capture"] {
        let dir = tempfile::tempdir().unwrap();
        let script = example(name);
        let args = ["run", "--cluster", &nats.url, &script];
        let run = crate::prism_with_env(dir.path(), &args, &[("PRISM_PYTHON_SDK", SDK)]);
        assert!(run.success, "{name}: {}\n{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, run_py(&script, &[]), "{name}");
    }
}

#[test]
fn a_large_object_is_pulled_once_checked_and_mapped() {
    let nats = Nats::start();
    let nodes = [nats.node(1), nats.node(1)];
    let run = nats.run(guest!(CLUSTER), &[], &["big", "256"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let line = "read 268435456 bytes, sum ok: true, mapped: true\n";
    assert_eq!(run.stdout, line.repeat(2));
    // Both reads ran where the first pulled it: one transfer in all.
    let mib = 1 << 20;
    nats.wait_until(
        |status| nodes.iter().map(|n| field(status, &n.id, "pulled")).sum::<u64>() >= 256 * mib,
        "the pull to be counted",
    );
    let status = nats.status();
    let pulled: Vec<u64> = nodes.iter().map(|n| field(&status, &n.id, "pulled")).collect();
    assert!(pulled.iter().sum::<u64>() < 257 * mib, "pulled {pulled:?}");
}

#[test]
fn a_task_runs_where_its_large_argument_was_made() {
    let nats = Nats::start();
    let nodes = [nats.node(1), nats.node(1), nats.node(1)];
    let run = nats.run(guest!(CLUSTER), &[], &["made", "64"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "read 67108864 bytes, sum ok: true, mapped: true\n");
    let nodes: Vec<&Node> = nodes.iter().collect();
    wait_for_tasks(&nats, &nodes, 2);
    let status = nats.status();
    for node in &nodes {
        assert!(field(&status, &node.id, "pulled") < 1 << 20, "node {} pulled the value: {status:?}", node.id);
    }
}

#[test]
fn a_node_killed_mid_job_is_declared_dead_and_its_tasks_run_elsewhere() {
    let nats = Nats::start();
    let mut nodes = [nats.node(1), nats.node(1), nats.node(1)];
    let driver = nats.spawn_run(guest!(CLUSTER), &[], &["slow", "30", "300"]);
    let victim = nodes[0].id.clone();
    nats.wait_until(|status| field(status, &victim, "running") > 0, "the job to reach the victim");
    nodes[0].kill();
    let run = driver.join().unwrap();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.ends_with("all 30 done\n"), "{}", run.stdout);
    let retried = run.stderr.matches(&format!("node {victim} died while running it")).count();
    assert!(retried > 0, "nothing was retried: {}", run.stderr);
    assert!(!alive(&nats.status(), &victim), "the killed node is still listed alive");
}

/// Large values stay on the node that made them, as in Ray. When that node
/// is killed before they are read, each is rebuilt by running its task
/// again elsewhere (its lineage), once; an object a task there made with
/// `put` cannot be rebuilt, and its `get` says `object-lost`, naming it.
#[test]
fn values_lost_with_their_node_are_rebuilt_and_a_lost_put_is_object_lost() {
    let nats = Nats::start();
    let mut nodes = [nats.node(1), nats.node(1), nats.node(1)];
    let victim = nodes[0].id.clone();
    let driver = nats.spawn_run(guest!(CLUSTER), &[], &["lost", &victim]);
    // Four parts and the stash ran there; then the driver's probes.
    nats.wait_until(|status| field(status, &victim, "tasks") >= 6, "the values to be made on the victim");
    nodes[0].kill();
    let run = driver.join().unwrap();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    for i in 0..4 {
        let made = run.stdout.matches(&format!("(part) made part {i}\n")).count();
        assert_eq!(made, 2, "part {i} was made {made} times, not once and once rebuilt:\n{}", run.stdout);
    }
    assert_eq!(run.stderr.matches("rebuilding a lost value").count(), 4, "{}", run.stderr);
    assert!(run.stdout.contains("the stash: object lost: object `"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("` was only on node {victim}, where a task made it")), "{}", run.stdout);
    assert!(run.stdout.ends_with("the parts, rebuilt: true\n"), "{}", run.stdout);
}

/// The run of `cluster.wasm -- relay`, once it read the value on the other
/// node whole and mapped.
fn relayed(driver: std::thread::JoinHandle<Run>) -> Run {
    let run = driver.join().unwrap();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("read on the other node: 8388608 bytes, sum ok: true, mapped: true\n"),
        "{}",
        run.stdout
    );
    run
}

/// A task on one node whose argument another node keeps pulls it from
/// that node straight, not through the driver: the driver never has a copy,
/// so once the node that made it dies, the driver's own read rebuilds it.
#[test]
fn an_argument_kept_on_one_node_is_pulled_from_there_by_another() {
    let nats = Nats::start();
    let mut nodes = [nats.node(1), nats.node(1), nats.node(1)];
    let (from, to) = (nodes[0].id.clone(), nodes[1].id.clone());
    let driver = nats.spawn_run(guest!(CLUSTER), &[], &["relay", &from, &to]);
    nats.wait_until(|status| field(status, &to, "tasks") >= 1, "the task on the other node to run");
    let pulled = field(&nats.status(), &to, "pulled");
    assert!(pulled >= 8 << 20, "node {to} pulled {pulled} bytes, not the 8 MiB value");
    nodes[0].kill();
    let run = relayed(driver);
    assert_eq!(run.stdout.matches("(part) made part 7\n").count(), 2, "not made once and rebuilt once: {}", run.stdout);
    assert_eq!(run.stderr.matches("rebuilding a lost value").count(), 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("read there again once its node died: 8388608 bytes, sum ok: true\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with("read here, right: true\n"), "{}", run.stdout);
}

/// A generator task runs on a node, as any task does, and its items come
/// back in order as it yields them; it may ask for resources. An actor's
/// generator method runs where the actor's instance is. A task on a node
/// that starts a generator task has the driver place it (here, on the
/// gpu's node, which is not the task's), and it calls the driver's actor's
/// generator method; both stream their items back to the task.
#[test]
fn generator_tasks_run_on_nodes() {
    let nats = Nats::start();
    let plain = nats.node(1);
    let gpu = nats.node_in(None, 1, &["--resources", "gpu=1"]);
    let run = nats.run(guest!(CLUSTER), &[], &["generate", &plain.id]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let expected = format!(
        "items in order: [0, 1, 2, 3, 4]\nran on one node, not the driver's: true\ngpu generator ran on: {}\n\
         an actor's generator method on a node: [11, 12, 13], not on the driver's: true\n\
         from a task on plain: gpu generator ran on the gpu's node: true\n\
         from a task: the actor's generator method: [11, 12, 13]\n",
        gpu.id
    );
    assert_eq!(run.stdout, expected);
}

/// The value of a task that a task on a node started goes from the node
/// that made it straight to the node that reads it: the driver, which owns
/// it, never holds its bytes (its store here is too small for them).
#[test]
fn a_large_value_a_task_on_a_node_started_goes_straight_to_it() {
    let nats = Nats::start();
    let (on, other) = (nats.node(1), nats.node(1));
    let run = nats.run(guest!(CLUSTER), &["--object-store-disk", "32"], &["nested-large", &on.id, &other.id, "48"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "read 50331648 bytes made on the other node, sum ok: true\n");
}

/// Tasks that a task on a node starts go back to the driver's node, which
/// places them across the cluster (and owns their results), as Ray's
/// nested tasks spread: here over all three nodes.
#[test]
fn tasks_started_by_a_task_on_a_node_spread_over_the_cluster() {
    let nats = Nats::start();
    let nodes = [nats.node(1), nats.node(1), nats.node(1)];
    let run = nats.run(guest!(CLUSTER), &[], &["fan-out", "12", "200"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "the children ran on 3 nodes\n");
    // The parent and its 12 children, each run once.
    let tasks = |status: &[Value]| nodes.iter().map(|n| field(status, &n.id, "tasks")).sum::<u64>();
    nats.wait_until(|status| tasks(status) >= 13, "the nodes to count 13 tasks");
    assert_eq!(tasks(&nats.status()), 13);
}

/// Ray's `cancel` reaches across nodes: a generator running on a node,
/// cancelled from the driver, stops there; so does a task on a node with
/// the task it started (a recursive cancel, from the driver); and a task on
/// a node cancels the task, then the generator, it started. The node has two cpus: a task that
/// needs both runs after each cancel, so nothing cancelled still spins.
#[test]
fn a_task_cancelled_on_another_node_stops_there_and_so_do_the_tasks_it_started() {
    let nats = Nats::start();
    let _node = nats.node(2);
    let run = nats.run(guest!(CLUSTER), &[], &["cancel"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        "a generator on a node, cancelled from the driver: cancelled; then Ok(9)\n\
         a task on a node and the task it started, cancelled from the driver: then Ok(9)\n\
         a task on a node cancelling the task it started: waited: timeout, then: cancelled\n\
         then Ok(9)\n\
         a task on a node cancelling the generator it started: first: Some(Ok(1)), then: cancelled\n\
         then Ok(9)\n"
    );
}

/// Named actors are found cluster-wide: a driver finds the actor another
/// driver named, calls it (seeing its state, and reading a generator
/// method), and so does one of its tasks on a node; then it kills it. A name no driver has is a clear error.
#[test]
fn a_named_actor_is_found_called_and_killed_from_another_driver() {
    let nats = Nats::start();
    let _nodes = [nats.node(1), nats.node(1)];
    let keeper = nats.spawn_run(guest!(CLUSTER), &[], &["keep-named", "shared"]);
    let user = nats.run(guest!(CLUSTER), &[], &["use-named", "shared"]);
    assert!(user.success, "{}\n{}", user.stdout, user.stderr);
    let mut lines = user.stdout.lines();
    let missing = lines.next().unwrap();
    assert!(missing.contains("no live actor named `nobody` here or on another driver"), "{missing}");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [
            "found shared holding 5",
            "total 6",
            "its generator method yields [7, 8]",
            "a task finds it holding 6",
            "killed"
        ]
    );
    let keeper = keeper.join().unwrap();
    assert!(keeper.success, "{}\n{}", keeper.stdout, keeper.stderr);
    assert_eq!(keeper.stdout, "total 5\nkilled by another driver\n");
}

/// An actor that a task on a node makes is kept by the task's driver, as
/// the driver's own are: its name is found by that driver, by another task
/// on a node, and by another driver and its task on a node; that driver
/// kills it.
#[test]
fn an_actor_a_task_makes_on_a_node_is_named_across_the_cluster() {
    let nats = Nats::start();
    let _nodes = [nats.node(1), nats.node(1)];
    let mut keeper = nats.driver(&["named-by-task", "made"]);
    let mut lines = keeper.lines();
    let found: Vec<_> = lines.by_ref().take(3).collect();
    assert_eq!(found, ["a task made it: total 5", "the driver finds it holding 5", "a task finds it holding 5"]);
    let user = nats.run(guest!(CLUSTER), &[], &["use-named", "made"]);
    assert!(user.success, "{}\n{}", user.stdout, user.stderr);
    assert_eq!(
        user.stdout.lines().skip(1).collect::<Vec<_>>(),
        [
            "found made holding 5",
            "total 6",
            "its generator method yields [7, 8]",
            "a task finds it holding 6",
            "killed"
        ]
    );
    assert_eq!(lines.next().as_deref(), Some("killed by another driver"));
    assert!(keeper.child.wait().unwrap().success());
}

/// A name is held by one driver at a time, as Ray's names are unique: a
/// second driver is refused it while the first keeps its actor, and takes
/// it once that driver is gone (killed, or ended).
#[test]
fn an_actor_name_is_held_by_one_driver_at_a_time() {
    let nats = Nats::start();
    let _node = nats.node(1);
    let mut keeper = nats.driver(&["keep-named", "solo"]);
    assert_eq!(keeper.lines().next().as_deref(), Some("total 5"));
    let claim = || {
        let run = nats.run(guest!(CLUSTER), &[], &["claim", "solo"]);
        assert!(run.success, "{}\n{}", run.stdout, run.stderr);
        run.stdout
    };
    assert_eq!(claim(), "refused: invalid argument: an actor named `solo` already exists\n");
    keeper.kill();
    // The killed driver left its claim behind; the next driver takes it,
    // and the one after it takes it again once that one has ended.
    assert_eq!(claim(), "claimed solo, total 1\n");
    assert_eq!(claim(), "claimed solo, total 1\n");
}

/// Calls of another driver's named actor fail, not hang, once that driver
/// is killed (its actors go with it, as Ray's owned actors do).
#[test]
fn calls_of_a_killed_drivers_named_actor_fail() {
    let nats = Nats::start();
    let _node = nats.node(1);
    let mut keeper = nats.driver(&["keep-named", "leaned"]);
    let mut user = nats.driver(&["lean-on", "leaned"]);
    let mut lines = user.lines();
    assert_eq!(lines.next().as_deref(), Some("found leaned holding 5"));
    keeper.kill();
    let failed = lines.next().unwrap();
    assert!(failed.starts_with("once its driver died: "), "{failed}");
    assert!(failed.contains("the driver that keeps the actor is gone"), "{failed}");
    assert!(user.child.wait().unwrap().success());
}

/// Reference counting spans nodes: what a node keeps for a job (values
/// its tasks left, fetched or not) is let go of there as soon as the
/// driver lets go of it, not when the job or its driver ends.
#[test]
fn a_node_lets_go_of_values_once_the_driver_does() {
    let nats = Nats::start();
    let nodes = [nats.node(1), nats.node(1)];
    let mut driver = nats.driver(&["churn", "24", "2"]);
    assert!(driver.lines().any(|line| line == "churned"), "the driver did not churn");
    // The driver is still there (the nodes keep its job as long as it is),
    // and holds none of the values any more.
    let held = |status: &[Value]| nodes.iter().map(|n| field(status, &n.id, "bytes")).sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(15);
    while held(&nats.status()) > 1 << 20 {
        assert!(Instant::now() < deadline, "the nodes still keep {} bytes", held(&nats.status()));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(driver.child.try_wait().unwrap().is_none(), "the driver ended before the nodes let go");
}

/// A driver killed with `kill -9` tells no one; the nodes find it gone
/// (NATS says no one takes its requests any more) and drop its actors'
/// instances and jobs within seconds.
#[test]
fn the_actors_of_a_killed_driver_go_from_the_nodes() {
    let nats = Nats::start();
    let nodes = [nats.node(1), nats.node(1)];
    let mut driver = nats.driver(&["tally", "100000", "20"]);
    let actors = |status: &[Value]| nodes.iter().map(|n| field(status, &n.id, "actors")).sum::<u64>();
    nats.wait_until(|status| actors(status) == 1, "the driver's actor to live on a node");
    driver.kill();
    nats.wait_until(|status| actors(status) == 0, "the nodes to drop the killed driver's actor");
}

/// The tasks a killed driver left running on the nodes stop there (its
/// connections closed): they do not spin on to their cpu deadline, set
/// here far beyond the minute [`Nats::wait_until`] waits.
#[test]
fn the_tasks_of_a_killed_driver_stop_on_the_nodes() {
    let nats = Nats::start();
    let deadline = ["--cpu-deadline", "600"];
    let nodes = [nats.node_in(None, 1, &deadline), nats.node_in(None, 1, &deadline)];
    let mut driver = nats.driver(&["spin", "2"]);
    let sum = |status: &[Value], name| nodes.iter().map(|n| field(status, &n.id, name)).sum::<u64>();
    // Started, not only received (a node fetches and compiles the component first).
    nats.wait_until(|status| sum(status, "tasks") == 2, "both endless tasks to run");
    driver.kill();
    // Stopped, each counts as failed (as a cancelled task does on one node).
    nats.wait_until(
        |status| sum(status, "running") == 0 && sum(status, "failed") == 2,
        "the nodes to stop the killed driver's tasks",
    );
}

#[test]
fn a_node_stopped_leaves_the_listing_and_stops_even_with_nats_gone() {
    let nats = Nats::start();
    let (mut leaving, mut stranded) = (nats.node(1), nats.node(1));
    assert!(leaving.stop().success());
    // Gone from the listing at once, not listed dead for a while.
    let gone = nats.status();
    assert!(gone.iter().all(|n| n["id"] != leaving.id.as_str()), "{gone:?}");
    drop(nats);
    assert!(stranded.stop().success());
}

#[test]
fn no_live_node_or_no_node_big_enough_is_a_clear_error() {
    let nats = Nats::start();
    let run = nats.run(guest!(SQUARE), &[], &[]);
    assert!(!run.success);
    assert!(run.stderr.contains("no node of the cluster at nats://"), "{}", run.stderr);
    let node = nats.node(1);
    // The driver's machine has the cpus; no node does.
    let run = nats.run(guest!(CLUSTER), &["--workers", "64"], &["greedy"]);
    assert!(run.success, "{}", run.stderr);
    let expected = format!("task `greedy` asks for cpus=64 but no live node has that much (node {}: cpus=1)", node.id);
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--cluster", "nats://127.0.0.1:1", guest!(SQUARE)]);
    assert!(run.stderr.contains("cannot reach the cluster's NATS server at `nats://127.0.0.1:1`"), "{}", run.stderr);
}

/// Ray's custom resources and node affinity across nodes: tasks and an
/// actor asking for `gpu` go to the one node that has it, the actor holds
/// it while it lives, hard affinity pins, soft affinity gives way, and what
/// no node can give is a clear error.
#[test]
fn resources_and_node_affinity_choose_the_node() {
    let nats = Nats::start();
    let gpu = nats.node_in(None, 1, &["--resources", "gpu=1"]);
    let _others = [nats.node(1), nats.node(1)];
    let status = nats.status();
    assert_eq!(entry(&status, &gpu.id)["resources"], serde_json::json!({"gpu": 1.0}));
    let run = nats.run(guest!(CLUSTER), &[], &["resources"]);
    assert!(run.success, "{}", run.stderr);
    let id = &gpu.id;
    let expected = format!(
        "gpu tasks ran on: {id}\ngpu actor lives on: {id}\n\
         a gpu task while the actor lives: timed out before the objects were ready\n\
         once the actor is killed, it ran on: {id}\nhalf-gpu tasks ran on: {id}\n\
         a tpu task: limit exceeded: task `where_am_i` asks for cpus=1, tpu=1 but no live node has that much ("
    );
    assert!(run.stdout.starts_with(&expected), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("node {id}: cpus=1, gpu=1")), "{}", run.stdout);
    let run = nats.run(guest!(CLUSTER), &[], &["pin"]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "nodes seen: 3\npinned tasks ran on the node they name: true\n\
         soft affinity to a node that is not there: ran on 1 nodes\n\
         hard affinity to a node that is not there: limit exceeded: task `where_am_i` must run on node gone (node affinity), which is not alive\n"
    );
}

/// A network namespace joined to this one by a veth pair, for a link to
/// cut or slow: `outside` is this side's address, `inside` the namespace's.
struct Netns {
    name: String,
    /// This side's end of the link, and the namespace's.
    link: String,
    peer: String,
    outside: String,
    inside: String,
}

fn ip(args: &[&str]) {
    iproute2("ip", args);
}

/// Runs `ip` or `tc` with `args`, which must succeed.
fn iproute2(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run `{program}`: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    fn new() -> Netns {
        // One per test, even when tests run at once in this process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = (std::process::id() + 7 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 200 + 20;
        let (name, link, peer) = (format!("prism-cut-{n}"), format!("pcut{n}h"), format!("pcut{n}n"));
        let (outside, inside) = (format!("10.250.{n}.1"), format!("10.250.{n}.2"));
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let netns = Netns { name, link, peer, outside, inside };
        let peer = &netns.peer;
        ip(&["link", "add", &netns.link, "type", "veth", "peer", "name", peer]);
        ip(&["link", "set", peer, "netns", &netns.name]);
        ip(&["addr", "add", &format!("{}/30", netns.outside), "dev", &netns.link]);
        ip(&["link", "set", &netns.link, "up"]);
        let inside = ["netns", "exec", &netns.name, "ip"];
        ip(&[&inside[..], &["addr", "add", &format!("{}/30", netns.inside), "dev", peer]].concat());
        ip(&[&inside[..], &["link", "set", peer, "up"]].concat());
        ip(&[&inside[..], &["link", "set", "lo", "up"]].concat());
        // Every address of this side is reachable from inside (this side
        // forwards nothing, so another namespace's are not).
        ip(&[&inside[..], &["route", "add", "default", "via", &netns.outside]].concat());
        netns
    }

    fn set_link(&self, up: bool) {
        ip(&["link", "set", &self.link, if up { "up" } else { "down" }]);
    }

    /// Slows the link to `rate` each way, with tc's token bucket filter.
    fn slow(&self, rate: &str) {
        let tbf =
            |dev| ["qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "100ms"];
        iproute2("tc", &tbf(&self.link));
        ip(&[&["netns", "exec", &self.name, "tc"][..], &tbf(&self.peer)].concat());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair too.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A slow link (20 Mbit/s each way; this kernel has no `netem` to add
/// latency) does not break a pull or get the node declared dead: an 8 MiB
/// argument takes longer than the failure detector's bound (3 s) to reach
/// the node, and the task runs once, its value right. Then a task there
/// makes an actor from 32 MiB it made, which the driver's node pulls
/// first (some 13 s): the task waits for it, however long that takes.
#[test]
fn a_node_on_a_slow_link_pulls_its_argument_and_is_not_declared_dead() {
    let netns = Netns::new();
    netns.slow("20mbit");
    let nats = Nats::start_at("0.0.0.0");
    let node = nats.node_in(Some(&netns), 1, &[]);
    let transfer = format!("{}:0", netns.outside);
    let run = nats.run(guest!(CLUSTER), &["--transfer-listen", &transfer], &["big", "8"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "read 8388608 bytes, sum ok: true, mapped: true\n".repeat(2));
    assert!(node.joined.try_recv().is_err(), "the node was declared dead and rejoined");
    nats.wait_until(|status| field(status, &node.id, "tasks") == 2, "the node to count its 2 tasks");
    assert_eq!(field(&nats.status(), &node.id, "failed"), 0);
    let run = nats.run(guest!(CLUSTER), &["--transfer-listen", &transfer], &["big-actor", "32"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "an actor a task made from 33554432 bytes, sum ok: true\n");
    assert!(node.joined.try_recv().is_err(), "the node was declared dead and rejoined");
}

/// A node that cannot reach the node keeping a task's argument (each is in
/// a namespace of its own, and this one forwards nothing between them)
/// says so without running the task; the driver fetches the argument from
/// the node keeping it and sends it itself, and the task runs.
#[test]
fn a_node_that_cannot_reach_the_node_keeping_an_argument_gets_it_through_the_driver() {
    let (keeping, taking) = (Netns::new(), Netns::new());
    let nats = Nats::start_at("0.0.0.0");
    let mut from = nats.node_in(Some(&keeping), 1, &[]);
    let to = nats.node_in(Some(&taking), 1, &[]);
    // The driver's transfer server, reachable from both nodes.
    let transfer = format!("{}:0", taking.outside);
    let driver = nats.spawn_run(guest!(CLUSTER), &["--transfer-listen", &transfer], &["relay", &from.id, &to.id]);
    nats.wait_until(|status| field(status, &to.id, "tasks") >= 1, "the task on the other node to run");
    from.kill();
    let run = relayed(driver);
    assert!(run.stderr.contains("a node could not pull an argument from the node keeping it"), "{}", run.stderr);
    assert!(run.stdout.ends_with("read here, right: true\n"), "{}", run.stdout);
}

/// A driver cut off from the cluster (its link down, so NATS does not see
/// its connection close for minutes) stops answering the nodes' questions;
/// after 10 s of silence they drop its jobs and its actors' instances.
#[test]
fn the_actors_of_a_cut_off_driver_go_from_the_nodes() {
    let netns = Netns::new();
    let nats = Nats::start_at(&netns.outside);
    // Reachable from inside the namespace.
    let node = nats.node_in(None, 1, &["--transfer-listen", &format!("{}:0", netns.outside)]);
    let dir = tempfile::tempdir().unwrap();
    let transfer = format!("{}:0", netns.inside);
    let mut driver = Command::new("ip")
        .args(["netns", "exec", &netns.name, env!("CARGO_BIN_EXE_prism")])
        .args(["run", "--cluster", &nats.url, "--transfer-listen", &transfer, guest!(CLUSTER), "--"])
        .args(["tally", "100000", "20"])
        .env("PRISM_DATA_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    nats.wait_until(|status| field(status, &node.id, "actors") == 1, "the driver's actor to live on the node");
    netns.set_link(false);
    let cut = Instant::now();
    nats.wait_until(|status| field(status, &node.id, "actors") == 0, "the node to drop the cut-off driver's actor");
    assert!(cut.elapsed() >= Duration::from_secs(9), "dropped after {:?}, before 10 s of silence", cut.elapsed());
    let _ = driver.kill();
    let _ = driver.wait();
}

#[test]
fn a_node_cut_off_is_declared_dead_its_work_moves_and_it_rejoins_under_a_new_id() {
    let netns = Netns::new();
    let nats = Nats::start_at(&netns.outside);
    let here = nats.node(1);
    let there = nats.node_in(Some(&netns), 1, &[]);
    let transfer = format!("{}:0", netns.outside);
    let driver = nats.spawn_run(guest!(CLUSTER), &["--transfer-listen", &transfer], &["slow", "20", "300"]);
    nats.wait_until(|status| field(status, &there.id, "running") > 0, "the job to reach the node");
    netns.set_link(false);
    let run = driver.join().unwrap();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.ends_with("all 20 done\n"), "{}", run.stdout);
    assert!(run.stderr.contains(&format!("node {} died while running it", there.id)), "{}", run.stderr);
    assert!(alive(&nats.status(), &here.id));
    assert!(!alive(&nats.status(), &there.id), "the cut-off node is still listed alive");
    netns.set_link(true);
    // It takes a new id for every stretch of DEAD_AFTER it stays cut off;
    // the one it is alive under once back is the last of them.
    let first = there.joined.recv_timeout(Duration::from_secs(60)).expect("the node did not rejoin");
    assert_ne!(first, there.id);
    let inside = format!("{}:", netns.inside);
    let back = |status: &[Value]| {
        let new = |n: &&Value| n["id"] != there.id.as_str() && n["alive"] == true;
        status.iter().filter(new).find(|n| n["transfer"].as_str().unwrap().starts_with(&inside)).cloned()
    };
    nats.wait_until(|status| back(status).is_some(), "the node to be alive under a new id");
    let rejoined = back(&nats.status()).unwrap()["id"].as_str().unwrap().to_string();
    // A heartbeat of the old id stuck in the cut link may land once it is
    // back; the purge queued behind it takes the old id out.
    nats.wait_until(|status| !alive(status, &there.id), "the old id to be gone");
    assert!(std::iter::once(first).chain(there.joined.try_iter()).any(|id| id == rejoined));
    let before = back(&nats.status()).map_or(0, |n| n["tasks"].as_u64().unwrap());
    assert!(!rejoined.is_empty());
    // It serves again: a job with more tasks than one node's cpu reaches it
    // (under whichever id it has by then: a loaded machine can make it miss
    // heartbeats for long enough to rejoin again).
    let run = nats.run(guest!(CLUSTER), &["--transfer-listen", &transfer], &["squares", "200"]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.stdout, "sum 2646700\n");
    let served = |status: &[Value]| {
        status
            .iter()
            .any(|n| n["transfer"].as_str().unwrap().starts_with(&inside) && n["tasks"].as_u64() > Some(before))
    };
    nats.wait_until(served, "the rejoined node to run tasks");
}

#[test]
fn actors_live_on_nodes_keep_their_order_and_restart_elsewhere_when_their_node_dies() {
    let nats = Nats::start();
    let mut nodes = [nats.node(1), nats.node(1), nats.node(1)];
    let driver = nats.spawn_run(guest!(CLUSTER), &[], &["tally", "20", "200"]);
    let hosting = |status: &[Value]| nodes.iter().position(|n| field(status, &n.id, "actors") > 0);
    nats.wait_until(|status| hosting(status).is_some(), "a node to hold the actor");
    let victim = hosting(&nats.status()).unwrap();
    // Wait for a call or two before the kill.
    std::thread::sleep(Duration::from_millis(500));
    nodes[victim].kill();
    let run = driver.join().unwrap();
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let totals: Vec<u64> = run.stdout.lines().filter_map(|l| l.strip_prefix("total ")?.parse().ok()).collect();
    assert_eq!(totals.len(), 20, "{}", run.stdout);
    // In order on each instance: each total is one more than the last,
    // except once, where the restarted instance starts again from 1.
    let restarts = totals.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert_eq!(restarts, 1, "{totals:?}");
    assert!(totals.windows(2).all(|w| w[1] == w[0] + 1 || w[1] == 1), "{totals:?}");
    assert!(run.stderr.contains("restarting actor"), "{}", run.stderr);
    // Named actors on nodes are found, called and killed.
    assert!(run.stdout.contains("named 7\nafter kill: Err(\"actor died\")\n"), "{}", run.stdout);
}
