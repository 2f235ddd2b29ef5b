//! Ray's semantics, through tests/programs/src/bin/semantics.rs.

use crate::{guest, prism, run_ok};

fn case(name: &str) -> String {
    run_ok(guest!(SEMANTICS), &[name])
}

#[test]
fn list_get_keeps_order_and_duplicates() {
    assert_eq!(case("get-order"), "[1, 4, 2, 1, 3, 4, 2]\n");
}

#[test]
fn get_timeout_then_success() {
    assert_eq!(case("get-timeout"), "first: error timed out before the objects were ready\nlater: ok 7\n");
}

#[test]
fn wait_partial_results_in_input_order() {
    assert_eq!(
        case("wait"),
        "ready 2, not ready 2\nslow not ready: true\ninput order kept: true\n\
         after timeout: ready 0, not ready 1\nall fast: ready 3, not ready 0\n"
    );
}

#[test]
fn wait_empty_and_duplicates() {
    let out = case("wait-edge");
    assert!(out.starts_with("empty: ready 0, not ready 0\n"), "{out}");
    assert!(out.contains("duplicates: error invalid argument: ref `"), "{out}");
    assert!(out.contains("` appears more than once in `wait`"), "{out}");
    assert!(
        out.contains("too many: error invalid argument: `num-returns` must be from 1 to the 1 refs given, not 2"),
        "{out}"
    );
    // Ray's edge cases: `wait([])` with the default `num_returns` is fine,
    // `num_returns=0` is refused.
    assert!(out.contains("empty, default num_returns: ready 0, not ready 0\n"), "{out}");
    assert!(
        out.contains("num_returns 0: error invalid argument: `num-returns` must be from 1 to the 1 refs given, not 0"),
        "{out}"
    );
}

#[test]
fn chain_of_100_nested_tasks_on_2_workers() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--workers", "2", guest!(SEMANTICS), "--", "chain"]);
    assert_eq!(run.stdout, "chain depth 100\n", "{}", run.stderr);
}

#[test]
fn fan_out_where_every_task_gets_its_children_on_2_workers() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--workers", "2", guest!(SEMANTICS), "--", "tree"]);
    assert_eq!(run.stdout, "tree leaves 125\n", "{}", run.stderr);
}

#[test]
fn errors_name_the_function_and_chain_through_consumers() {
    let out = case("errors");
    let expect = [
        "direct: error task `fail` failed: boom",
        "consumer: error task `consume` failed: its argument 0 (`",
        "failed, because task `fail` failed: boom",
        // Regression (chains through `?`): two links, the inner one with its own message.
        "nested: error task `get_nested` failed: a prism call it made failed, because task `fail` failed: boom",
        "nested chain: [\"get_nested\", \"fail\"]",
        "unknown function: error invalid argument: component `semantics.wasm` has no task `squre`; it has `chain`, `consume`",
        "too many cpus: error limit exceeded: task `value_after` asks for 1000 cpus but this node has",
        "chain: [\"consume\", \"fail\"]",
    ];
    for e in expect {
        assert!(out.contains(e), "missing {e:?} in:\n{out}");
    }
}

/// Ray's "unhandled error": a failure dropped without a `get` is written
/// to the job's stderr once, naming the function; a read one never is.
#[test]
fn an_error_nobody_read_is_reported_once_when_its_last_ref_goes() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", guest!(SEMANTICS), "--", "unhandled"]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.stdout, "forgot: ok 7\n");
    let reports: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("prism: unhandled error")).collect();
    assert_eq!(reports.len(), 3, "{}", run.stderr);
    for message in ["nobody read this", "forgotten in a task", "held to the end"] {
        let found: Vec<_> = reports.iter().filter(|l| l.contains(message)).collect();
        assert_eq!(found.len(), 1, "{message:?} once in:\n{}", run.stderr);
        assert!(found[0].starts_with("prism: unhandled error from `fail` (ref "), "{}", found[0]);
        assert!(found[0].ends_with(&format!("dropped without a get): task `fail` failed: {message}")), "{}", found[0]);
    }
}

#[test]
fn retries_after_trap_and_after_error_when_asked() {
    let out = case("retry");
    let expect = [
        // The guest's panic message is part of the error.
        "trap, no retries: crashed: error task `flaky_trap` failed: wasm trap: wasm `unreachable` instruction executed; \
         stderr: thread '<unnamed>' (1) panicked at tests/programs/src/bin/semantics.rs",
        "first attempt fails",
        // Regression: Ray's default of 3 retries after a crash.
        "\ntrap, default retries: ok \"second attempt succeeded\"\n",
        // Regression: `exit` is a crash, said in one line.
        "\nexit: crashed: error task `exits` failed: it called `exit(0)` instead of returning\n",
        "\ntrap, max_retries 1: ok \"second attempt succeeded\"\n",
        "\nerror, retry_exceptions off: error task `flaky_error` failed: first attempt returns an error\n",
        "\nerror, retry_exceptions on: ok \"second attempt succeeded\"\n",
    ];
    for e in expect {
        assert!(out.contains(e), "missing {e:?} in:\n{out}");
    }
}

#[test]
fn endless_loop_memory_bomb_and_stack_overflow_end_at_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        prism(dir.path(), &["run", "--cpu-deadline", "1", "--memory-limit", "128", guest!(SEMANTICS), "--", "limits"]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "endless loop: error limit exceeded: task `endless_loop` exceeded its cpu deadline of 1s (raise it with --cpu-deadline)\n\
         memory bomb: error limit exceeded: task `memory_bomb` exceeded its memory limit of 128 MiB (raise it with --memory-limit)\n\
         stack overflow: error task `stack_overflow` failed: wasm trap: call stack exhausted\n\
         others: ok [0, 1, 2, 3]\n"
    );
}

#[test]
fn tasks_run_in_parallel_on_every_worker() {
    // Each task waits until the other has started: only true if both ran at once.
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--workers", "2", guest!(SEMANTICS), "--", "rendezvous"]);
    assert_eq!(run.stdout, "ran at once: [true, true]\n", "{}", run.stderr);
}

#[test]
fn driver_exit_failure_is_a_failure() {
    // WASI 0.2's `exit` carries success or failure, not a code.
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", guest!(SEMANTICS), "--", "exit"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
}

#[test]
fn guests_get_no_environment_files_or_network() {
    let dir = tempfile::tempdir().unwrap();
    let run = crate::prism_with_env(dir.path(), &["run", guest!(SEMANTICS), "--", "sandbox"], &[("SECRET", "x")]);
    assert_eq!(
        run.stdout, "env vars: 0\nread /etc/passwd: false\nlist /: false\ntcp connect: false\ntcp listen: false\n",
        "{}",
        run.stderr
    );
}

#[test]
fn generators_stream_in_order_fail_at_the_item_and_skip_replayed_items() {
    let out = case("generator");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "items: [0, 1, 2, 3, 4]");
    assert_eq!(lines[1], "failing: [\"ok 0\", \"ok 1\", \"error task `fail_after` failed: failed after 2 items\"]");
    assert_eq!(lines[2], "retried: [0, 1, 2, 3]");
    assert_eq!(lines[3], "timeout: error timed out before the objects were ready");
    assert_eq!(lines[4], "then: [0, 1]");
    assert!(
        lines[5].starts_with("unknown: [\"error invalid argument: component `semantics.wasm` has no task `nope`"),
        "{out}"
    );
    assert_eq!(
        lines[6],
        "yield outside a generator: error invalid argument: `yield-item` is only for generators \
         (started with `remote-generator` or `call-generator`)"
    );
}

/// Regression: the instance pool reserved 2 × 1000 memories of 4 GiB of
/// address space, with no fallback; under `ulimit -v` the node did not start.
#[test]
fn under_a_small_address_space_limit_the_pool_shrinks_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .args(["-c", "ulimit -v 64000000 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_prism"), "run", guest!(SQUARE)])
        .env("PRISM_DATA_DIR", dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "[0, 1, 4, 9]\n");
    let said: Vec<_> = stderr.lines().filter(|l| l.contains("using a pool of")).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("may not reserve address space for 1000 instances at once"), "{stderr}");
}

/// Ray's custom resources and node affinity on one node (across nodes:
/// tests/all/cluster.rs): a task asking for `gpu` runs, an actor holding it
/// keeps the next one waiting until it is killed, and what the node cannot
/// give is a clear error, as is a bad `--resources`.
#[test]
fn resources_and_node_affinity_on_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["run", "--workers", "2", "--resources", "gpu=1", guest!(CLUSTER), "--"];
    let run = prism(dir.path(), &[&args[..], &["resources"]].concat());
    assert!(run.success, "{}", run.stderr);
    let id = run.stdout.lines().next().and_then(|l| l.strip_prefix("gpu tasks ran on: ")).unwrap().to_string();
    assert_eq!(id.len(), 16, "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!(
            "gpu tasks ran on: {id}\ngpu actor lives on: {id}\n\
             a gpu task while the actor lives: timed out before the objects were ready\n\
             once the actor is killed, it ran on: {id}\nhalf-gpu tasks ran on: {id}\n\
             a tpu task: limit exceeded: task `where_am_i` asks for resource `tpu`, which this node does not have (see --resources)\n"
        )
    );
    let run = prism(dir.path(), &[&args[..], &["pin"]].concat());
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(
            "nodes seen: 1\npinned tasks ran on the node they name: true\n\
             soft affinity to a node that is not there: ran on 1 nodes\n\
             hard affinity to a node that is not there: limit exceeded: task `where_am_i` must run on node gone (node affinity), but this is node "
        ),
        "{}",
        run.stdout
    );
    for (bad, says) in [
        ("gpu", "`gpu` is not NAME=AMOUNT"),
        ("gpu=many", "the amount of `gpu` is not a number: `many`"),
        ("gpu=-1", "`gpu=-1` asks for gpu=-1: a resource needs a name and a positive amount"),
    ] {
        let run = prism(dir.path(), &["run", "--resources", bad, guest!(CLUSTER), "--", "pin"]);
        assert!(!run.success && run.stderr.contains(says), "{bad}: {}", run.stderr);
    }
}
