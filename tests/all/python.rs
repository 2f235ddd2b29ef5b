//! Python programs (examples/python, tests/programs/python) built with the
//! SDK in this checkout (`PRISM_PYTHON_SDK`) by the toolchain the README's
//! set-up installs, and run through `prism run`, `prism build` and HTTP.

use crate::service::Server;
use crate::{Run, guest, prism_with_env};
use serde_json::json;

pub(crate) const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk/python");

/// The path of examples/python/NAME.py.
pub(crate) fn example(name: &str) -> String {
    format!("{}/../../examples/python/{name}.py", env!("CARGO_MANIFEST_DIR"))
}

const SEMANTICS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/programs/python/semantics.py");

/// `prism ARGS…` with the checkout's SDK, on a fresh data directory.
fn prism_py(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    prism_with_env(dir.path(), args, &[("PRISM_PYTHON_SDK", SDK)])
}

/// `prism run SCRIPT -- ARGS…`'s stdout; panics with the output if it fails.
pub(crate) fn run_py(script: &str, args: &[&str]) -> String {
    let mut argv = vec!["run", script, "--"];
    argv.extend_from_slice(args);
    let run = prism_py(&argv);
    assert!(run.success, "prism run {script} {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

#[test]
fn square() {
    assert_eq!(run_py(&example("square"), &[]), "[0, 1, 4, 9]\n");
}

#[test]
fn put_get() {
    assert_eq!(run_py(&example("put_get"), &[]), "1\n[0, 1, 2]\n");
}

#[test]
fn echo_by_value_and_by_ref() {
    assert_eq!(run_py(&example("echo"), &[]), "(echo) 1 2 3\n(echo) 1 2 3\n");
}

#[test]
fn echo_and_get_sees_nested_refs() {
    crate::examples::assert_echo_and_get(&run_py(&example("echo_and_get"), &[]));
}

/// The task reads refs only the driver's code made: captured, as Ray does.
#[test]
fn print_via_capture() {
    assert_eq!(run_py(&example("print_via_capture"), &[]), "(print_via_capture) [1, 2, 3]\n");
}

#[test]
fn a_task_calling_tasks() {
    assert_eq!(run_py(&example("nested_tasks"), &[]), "285\n");
}

#[test]
fn counter_actor() {
    assert_eq!(run_py(&example("counter"), &[]), "[1, 2, 3]\n3\n");
}

/// Python tasks scan, the Rust component's `recognize` reads: every page
/// comes back, in order, recognized exactly.
#[test]
fn ocr_across_languages() {
    let run = prism_py(&["run", &example("ocr"), "--with", guest!(OCR)]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    crate::examples::assert_ocr_pages(&run.stdout);
}

/// Five 100 MB values, one at a time: the process peaks at about what one
/// value costs (0.9 GB for one here), not five times it.
#[test]
fn large_values_generator_keeps_memory_bounded() {
    let before = children_max_rss();
    let out = run_py(&example("large_values_generator"), &["5"]);
    let values: Vec<&str> = out.lines().filter(|l| l.starts_with("value ")).collect();
    assert_eq!(values.len(), 5, "{out}");
    assert!(values.iter().all(|l| l.ends_with(": 100000000 bytes, max 255")), "{out}");
    let peak = children_max_rss();
    // Unbounded, five values would peak far above this; a bound only holds
    // where no earlier child peaked higher.
    if peak > before {
        assert!(peak < 1_700 << 20, "peak RSS {} MiB", peak >> 20);
    }
}

/// The largest peak RSS of this process's waited-for children, in bytes.
fn children_max_rss() -> u64 {
    // SAFETY: getrusage writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024
}

const CASES: &[&str] = &[
    "get_order",
    "get_timeout",
    "wait",
    "chain",
    "errors",
    "retries",
    "actors",
    "generators",
    "queued",
    "cancel",
    "lifetime",
    "prepared",
];

#[test]
fn ray_semantics_from_python() {
    let out = run_py(SEMANTICS, CASES);
    for e in SEMANTICS_SEEN {
        assert!(out.contains(e), "missing {e:?} in:\n{out}");
    }
}

/// What tests/programs/python/semantics.py prints for [`CASES`].
const SEMANTICS_SEEN: &[&str] = &[
    "get with duplicates: ok [2, 1, 2, 1]\nget one: ok 1\n",
    "timed out: True\nthen: ok 'done'\n",
    "empty: ([], [])\nfirst 3: True True\ntimeout 0: [] 1\nall: 4 []\n",
    "num_returns 0: InvalidArgumentError invalid argument: `num-returns` must be from 1 to the 3 refs given, not 0\n",
    "duplicates: InvalidArgumentError invalid argument: ref `",
    "100-deep chain: ok 100\n",
    "consumer chain: ['identity', 'fail']\nfirst failure: fail ValueError: boom\n",
    "relay chain: ['relay', 'fail'] ValueError: deep\n",
    "retry_exceptions off: TaskError task `flaky` failed: Traceback (most recent call last):\n  File \"semantics.py\"",
    "RuntimeError: attempt 1 fails\nretry_exceptions on: ok 'attempt 3 succeeded'\n",
    "too few retries: TaskError task `flaky` failed: Traceback",
    "RuntimeError: attempt 2 fails\n== actors\n",
    "in order: True\nby name: ok 2\nunknown name: ObjectNotFoundError not found: no live actor named `nobody`\n",
    "name taken: InvalidArgumentError invalid argument: an actor named `shared` already exists\n",
    "after kill: ActorDiedError actor died: it was killed\n",
    "restarted, state anew: ok 6\nfailed constructor: True\n",
    "items: [0, 1, 2, 3]\nthen fails: [0, 1] KeyError: 'out of items'\n",
    // Calls queued behind a running one, taken in place (`actors.next-call`).
    "== queued\nqueued steps: True\na failure in the queue: TaskError task `Queue.fail` failed: Traceback",
    "ValueError: fails after 100\nafter it: [101, 102]\na generator in the queue: [102, 103, 104] 103\n",
    "cancelled in the queue: TaskCancelledError task `Queue.step` failed: it was cancelled\naround it: ['held', 104]\n",
    "before a crash: ['held', 105, 106]\nthe crash: LimitExceededError\nafter the restart: [1, 2]\n\
     killed while taken in place: ActorDiedError actor died: it was killed\n\
     behind it: ActorDiedError actor died: it was killed\n",
    "next-call in a task: WorkerCrashedError task `next_call_in_a_task` failed: ",
    "`actors.next-call` was called outside an actor's running method call, or twice for one call: \
     call it from `call-method`, once per call",
    "cancelled: forever\n",
    // A large object goes before the driver blocks; a small one may wait for its batch.
    "large, after a blocking call: ObjectNotFoundError not found: no object `",
    "small, batch not full: ok 7\n",
    // 5,000 task functions and 5,000 actor methods made and dropped, each called twice.
    "tasks: 25005000 calls: 10000\n",
    "generators: [[0, 1, 2], [0, 1, 2], [0, 1, 2]]\ngenerator methods: [[10000, 10001, 10002], [10000, 10001, 10002], [10000, 10001, 10002]]\n",
];

/// Ray's `resources=`, `num_gpus=` and `NodeAffinitySchedulingStrategy`,
/// on one node that offers `gpu` and `GPU`.
#[test]
fn python_tasks_and_actors_ask_for_resources_and_nodes() {
    let run = prism_py(&["run", "--workers", "2", "--resources", "gpu=1,GPU=1", SEMANTICS, "--", "placement"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        "== placement\nresources: ok True\nnum_gpus: ok True\npinned here: ok True\n\
         missing: LimitExceededError limit exceeded: task `node_id` asks for resource `tpu`, which this node does not have (see --resources)\n\
         soft elsewhere: ok True\nwhile an actor holds the gpu: waits\nthen: ok True\n"
    );
}

/// An endless `while True`, a memory bomb, deep recursion and a hoard of
/// task functions each end as the task's error at its limit, and the next
/// tasks run.
#[test]
fn python_guests_end_at_their_limits() {
    let run = prism_py(&["run", "--cpu-deadline", "1", "--memory-limit", "256", SEMANTICS, "--", "limits"]);
    assert!(run.success, "{}", run.stderr);
    let expect = [
        "endless loop: LimitExceededError limit exceeded: task `forever` exceeded its cpu deadline of 1s (raise it with --cpu-deadline)\n",
        "memory bomb: LimitExceededError limit exceeded: task `memory_bomb` exceeded its memory limit of 256 MiB (raise it with --memory-limit)\n",
        "deep recursion: TaskError task `deep` failed: Traceback",
        "RecursionError: maximum recursion depth exceeded\n",
        "hoarding task functions: LimitExceededError limit exceeded: task `hoard` held more than 4096 task functions and actor methods at once\nothers: ok [1, 2, 3, 4]\n",
    ];
    for e in expect {
        assert!(run.stdout.contains(e), "missing {e:?} in:\n{}", run.stdout);
    }
}

/// A Rust driver calls a Python component's task and actors: the Python
/// script's driver code does not run in its workers.
#[test]
fn a_rust_driver_calls_python_components() {
    let run =
        prism_py(&["run", guest!(CALLS), "--with", &example("square"), "--with", &example("counter"), "--", "tasks"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "by name: ok 49\nby id: ok 64\nref argument: ok 81\nfrom a task: ok 14\n");
    let run =
        prism_py(&["run", guest!(CALLS), "--with", &example("square"), "--with", &example("counter"), "--", "actors"]);
    assert!(run.stdout.starts_with("increments: ok [1, 2, 3]\nby name: ok 3\n"), "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn prism_build_writes_a_component_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("square.wasm");
    let build = prism_py(&["build", &example("square"), "-o", wasm.to_str().unwrap()]);
    assert!(build.success, "{}", build.stderr);
    assert_eq!(crate::run_ok(wasm.to_str().unwrap(), &[]), "[0, 1, 4, 9]\n");
}

#[test]
fn python_mistakes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = prism_py(&["run", dir.path().join("nothing.py").to_str().unwrap()]);
    assert!(!missing.success);
    assert!(missing.stderr.contains("cannot read") && missing.stderr.contains("nothing.py"), "{}", missing.stderr);

    let bad = dir.path().join("bad.py");
    std::fs::write(&bad, "import prism\n\ndef broken(:\n    pass\n").unwrap();
    let run = prism_py(&["run", bad.to_str().unwrap()]);
    assert!(!run.success);
    assert!(run.stderr.contains("cannot build `bad.py`: componentize-py failed"), "{}", run.stderr);
    assert!(run.stderr.contains("SyntaxError"), "{}", run.stderr);

    let raises = dir.path().join("raises.py");
    std::fs::write(&raises, "import prism\n\nprint('before')\nraise SystemError('driver gave up')\n").unwrap();
    let run = prism_py(&["run", raises.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "before\n");
    assert!(
        run.stderr.contains("line 4, in <module>") && run.stderr.contains("SystemError: driver gave up"),
        "{}",
        run.stderr
    );

    let not_python = prism_py(&["build", guest!(SQUARE)]);
    assert!(
        not_python.stderr.contains("is not a Python script (.py); build Rust programs with cargo"),
        "{}",
        not_python.stderr
    );
}

/// A Python module deployed over HTTP is invoked with JSON, as a Rust one,
/// and lists its functions with their type hints.
#[test]
fn a_python_module_over_http() {
    let server = Server::start(&[]);
    let token = server.tenant("alice");
    let run = server.cli_with_env(&token, &["deploy", SEMANTICS, "--name", "sem"], &[("PRISM_PYTHON_SDK", SDK)]);
    assert!(run.success, "{}", run.stderr);
    let info: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let function = |name: &str| info["functions"].as_array().unwrap().iter().find(|f| f["name"] == name).cloned();
    let inc = function("inc").unwrap();
    assert_eq!((&inc["params"], &inc["returns"]), (&json!([{"name": "x", "type": "int"}]), &json!("int")));
    let unhinted = function("spin_for").unwrap();
    assert_eq!(unhinted["params"], json!([{"name": "seconds", "type": "any"}, {"name": "value", "type": "any"}]));
    let answer = server.json("POST", "/v1/modules/sem/functions/inc", &token, &json!([41]));
    assert_eq!(answer.json(), json!({"result": 42}));
    let (code, message) = server.json("POST", "/v1/modules/sem/functions/fail", &token, &json!(["nope"])).error(422);
    assert_eq!(code, "task_failed");
    assert!(message.ends_with("ValueError: nope"), "{message}");
    let created = server.json("POST", "/v1/actors", &token, &json!({"module": "sem", "class": "Counter", "args": [5]}));
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    let called = server.json("POST", &format!("/v1/actors/{id}/methods/increment"), &token, &json!([]));
    assert_eq!(called.json(), json!({"result": 6}));

    // The same semantics as under `prism run`, as a job on the server.
    let job = server.json("POST", "/v1/jobs", &token, &json!({"module": "sem", "args": CASES}));
    assert_eq!(job.status, 201, "{}", job.text());
    let id = job.json()["id"].as_str().unwrap().to_string();
    let logs = server.request("GET", &format!("/v1/jobs/{id}/logs?follow=true"), &token, &[], b"").text();
    for e in SEMANTICS_SEEN {
        assert!(logs.contains(e), "missing {e:?} in the job's log:\n{logs}");
    }
    let record = server.request("GET", &format!("/v1/jobs/{id}"), &token, &[], b"").json();
    assert_eq!(record["state"], "succeeded", "{record}");
}

/// Pure-Python packages of the user's venv (`VIRTUAL_ENV`) are bundled.
#[test]
fn packages_of_the_users_venv_are_bundled() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("venv/lib/python3.11/site-packages/greeting");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("__init__.py"), "def hello(name):\n    return f'hello, {name}'\n").unwrap();
    let script = dir.path().join("app/uses_venv.py");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(
        &script,
        "import prism\nfrom greeting import hello\n\n@prism.remote\ndef greet(name):\n    return hello(name)\n\n\
         print(prism.get(greet.remote('prism')))\n",
    )
    .unwrap();
    let venv = dir.path().join("venv");
    let run = prism_with_env(
        &dir.path().join("data"),
        &["run", script.to_str().unwrap()],
        &[("PRISM_PYTHON_SDK", SDK), ("VIRTUAL_ENV", venv.to_str().unwrap())],
    );
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.stdout, "hello, prism\n");
}

/// `prism new` gives a project of one's own, outside the repository, that
/// builds and runs with one command, in Python and in Rust.
#[test]
fn prism_new_starts_programs_that_run() {
    let dir = tempfile::tempdir().unwrap();
    let python = dir.path().join("mine");
    let made = prism_py(&["new", python.to_str().unwrap()]);
    assert!(made.success, "{}", made.stderr);
    assert_eq!(run_py(python.join("app.py").to_str().unwrap(), &[]), "[0, 1, 4, 9]\n");
    assert!(prism_py(&["new", python.to_str().unwrap()]).stderr.contains("already exists"));

    let rust = dir.path().join("mine-rs");
    let made = prism_py(&["new", rust.to_str().unwrap(), "--lang", "rust"]);
    assert!(made.success, "{}", made.stderr);
    assert!(made.stdout.ends_with("&& cargo run --release\n"), "{}", made.stdout);
    let run = std::process::Command::new(env!("CARGO"))
        .args(["run", "--release", "--quiet"])
        .current_dir(&rust)
        .env("PRISM_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "[0, 1, 4, 9]\n");
}

/// A Python driver sends ints, floats, str, bytes, lists, dicts, None, a
/// ref and an actor handle to a Rust task, which reads them all (calling
/// the Python actor) and answers with the same kinds.
#[test]
fn values_cross_between_python_and_rust() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/programs/python/interop.py");
    let run = prism_py(&["run", script, "--with", guest!(CALLS)]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        "int: 43\nfloat: 2.5\ntext: 'PRISM'\ndata: b'\\xff\\x01\\x00'\nlist: [3, 2, 1]\nmap: {'a': 2}\nnone: None\n\
         nested: ObjectRef 410\ncounter: True 2\n"
    );
}
