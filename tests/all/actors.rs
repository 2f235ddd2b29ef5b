//! Ray's actor semantics, through tests/programs/src/bin/actors.rs.

use crate::{guest, prism, run_ok};

fn case(name: &str) -> String {
    // Task and actor output lines are tagged `(…)`; the cases print untagged.
    run_ok(guest!(ACTORS), &[name]).lines().filter(|l| !l.starts_with('(')).collect::<Vec<_>>().join("\n")
}

fn expect(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn an_actor_call_error_nobody_read_is_reported_naming_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", guest!(ACTORS), "--", "unhandled"]);
    assert_eq!(run.stdout, "read: error task `Log.refuse` failed: refused on purpose\n", "{}", run.stderr);
    let reports: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("prism: unhandled error")).collect();
    assert_eq!(reports.len(), 1, "{}", run.stderr);
    assert!(reports[0].starts_with("prism: unhandled error from `Log.refuse` (ref "), "{}", reports[0]);
}

#[test]
fn calls_with_randomly_delayed_ref_args_apply_in_submission_order() {
    assert_eq!(case("order"), "in submission order: true");
}

#[test]
fn a_caller_waiting_on_an_argument_does_not_block_another_caller() {
    assert_eq!(case("callers"), "other caller served first: ok 1\nitems: [2, 1]");
}

#[test]
fn restart_resets_state_then_the_budget_runs_out() {
    let out = case("restart");
    expect(
        &out,
        &[
            "append: ok 1\n",
            "crash: error task `Log.crash` failed: wasm trap",
            "log crashed on purpose",
            "after restart: ok []\n",
            "crash again: error task `Log.crash` failed",
            "budget spent: error actor died: `Log` crashed in `Log.crash`",
            "and was restarted 1 times (max_restarts)",
        ],
    );
}

#[test]
fn max_task_retries_makes_calls_at_least_once() {
    assert_eq!(
        case("task-retries"),
        "at-least-once: ok \"second call works\"\nat-most-once: the call failed\nnext call: ok \"second call works\""
    );
}

#[test]
fn kill_fails_queued_and_later_calls() {
    assert_eq!(case("kill"), "queued: error actor died: it was killed\nafter kill: error actor died: it was killed");
}

/// Dead actors are remembered, for calls to say why they died, up to a
/// bound: a node whose actors are made and killed for ever stays its size.
#[test]
fn the_oldest_dead_actors_are_forgotten_past_a_bound() {
    let kept = prism_node::actors::DEAD_KEPT.to_string();
    let out = run_ok(guest!(ACTORS), &["forgotten", &kept]);
    assert_eq!(out, format!("forgotten: 1, remembered as killed: {kept}\n"));
}

#[test]
fn failed_constructor_fails_every_call_with_its_message() {
    let died = "error actor died: the constructor of `Broken` failed: no configuration";
    assert_eq!(case("constructor"), format!("call: {died}\nagain: {died}"));
}

#[test]
fn named_actors_and_handles_reach_other_tasks() {
    assert_eq!(
        case("named"),
        "by name from a task: ok 1\nhandle to a task: ok 2\nitems: [5, 6]\n\
         name taken: error invalid argument: an actor named `registry` already exists\n\
         unknown name: error not found: no live actor named `nobody`"
    );
}

#[test]
fn a_trap_in_one_actor_leaves_the_others_serving() {
    let out = case("isolation");
    expect(&out, &["a crashes: error task `Log.crash` failed", "a after: error actor died:", "b serves: ok 1\n"]);
    assert!(out.ends_with("actor to actor: ok 1"), "{out}");
}

#[test]
fn an_actor_owns_the_actors_it_creates() {
    assert_eq!(case("owned-by-actor"), "child works: ok 1\nchild ended with its creator: true");
}

#[test]
fn actor_calls_run_under_the_cpu_deadline_and_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let run = crate::prism(
        dir.path(),
        &["run", "--cpu-deadline", "1", "--memory-limit", "64", guest!(ACTORS), "--", "limits"],
    );
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "endless loop: error limit exceeded: task `Log.spin` exceeded its cpu deadline of 1s (raise it with --cpu-deadline)\n\
         memory bomb: error limit exceeded: task `Log.hoard` exceeded its memory limit of 64 MiB (raise it with --memory-limit)\n\
         bystander: ok 1\n"
    );
}

#[test]
fn kill_with_restart_keeps_the_id_and_the_name() {
    // Regression: the kill's wake-up, left over when a call came with it,
    // interrupted that call on the new instance.
    let out = case("kill-restart");
    assert_eq!(out, "after restart: ok []\nname kept: ok 1\nrestarts spent: error actor died: it was killed");
}

#[test]
fn actor_methods_may_be_generators() {
    assert_eq!(
        case("generator-methods"),
        "streamed: [4, 5]\n\
         then fails: [\"ok 4\", \"ok 5\", \"error task `Log.each_then_fail` failed: no more items\"], ended\n\
         still serves: ok 3"
    );
}

/// With three instance slots and one cpu, the driver and two actors hold
/// them all: a third actor is refused at once, naming the flag (it would
/// wait for ever), and a task waits for a slot and is told why rather than
/// hang in silence.
#[test]
fn actors_past_the_slots_are_refused_and_a_waiting_call_says_so() {
    use std::io::{BufRead as _, Read as _};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["run", "--max-instances", "3", "--workers", "1", guest!(ACTORS), "--", "slots"])
        .env("PRISM_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Should no notice come, the run would wait for ever: end it.
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
    });
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let notice = stderr.lines().map_while(Result::ok).find(|line| line.contains("waiting for an instance slot"));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert_eq!(
        stdout.lines().next(),
        Some(
            "created 2, then: limit exceeded: 2 actors are alive, as many as may be at once: kill one, or raise --max-instances"
        ),
        "{stdout}"
    );
    let notice = notice.expect("no notice before the run ended");
    assert!(notice.contains("all 3 are held") && notice.ends_with("(raise --max-instances)"), "{notice}");
}
