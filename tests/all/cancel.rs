//! Ray's `ray.cancel`, through tests/programs/src/bin/cancel.rs.

use crate::{guest, prism};

fn case(name: &str, workers: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--workers", workers, guest!(CANCEL), "--", name]);
    assert!(run.success, "case {name} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

#[test]
fn a_pending_task_never_runs() {
    assert_eq!(
        case("pending", "1"),
        "pending: cancelled: error task `mark` failed: it was cancelled\nbusy: ok 7\nafter: ok 7\nlater ran 0 times\n"
    );
}

#[test]
fn a_running_task_is_interrupted_and_never_retried() {
    assert_eq!(
        case("running", "2"),
        "running: cancelled: error task `spin` failed: it was cancelled\nnext: ok 7\nspin ran 1 times\n"
    );
}

#[test]
fn recursive_cancel_frees_the_cpus_of_the_tasks_it_started() {
    // Ray's test_recursive_cancel: without it, `after` would wait forever.
    assert_eq!(
        case("recursive", "2"),
        "parent: cancelled: error task `parent` failed: it was cancelled\nafter: ok 5\n"
    );
}

#[test]
fn a_cancel_that_is_not_recursive_leaves_the_children_running() {
    assert_eq!(
        case("not-recursive", "2"),
        "parent: cancelled: error task `parent` failed: it was cancelled\nchild finished: true\n"
    );
}

#[test]
fn dependents_fail_with_a_chain_and_upstream_finishes() {
    let out = case("chain", "2");
    assert!(out.starts_with("up: ok 1\nmid: cancelled: error task `consume` failed: it was cancelled\n"), "{out}");
    assert!(out.contains("down: cancelled: error task `consume` failed: its argument 0 (`"), "{out}");
    assert!(
        out.ends_with(
            "failed, because task `consume` failed: it was cancelled\ndown chain: [\"consume\", \"consume\"]\n"
        ),
        "{out}"
    );
}

#[test]
fn cancel_right_after_submit_ends_in_the_value_or_cancelled() {
    assert_eq!(case("fast", "2"), "fast: 200 ended\n");
}

#[test]
fn cancelling_a_finished_task_changes_nothing() {
    assert_eq!(case("finished", "2"), "before: ok 2\nafter cancel: ok 2\n");
}

#[test]
fn a_cancelled_generator_keeps_its_items_then_reports_cancelled() {
    assert_eq!(
        case("generator", "2"),
        "yielded before: ok [0, 1]\nlater items readable: true\nend: cancelled: task `ticks` failed: it was cancelled\n"
    );
}

#[test]
fn a_queued_actor_call_is_cancelled_and_a_running_one_finishes() {
    assert_eq!(
        case("actor", "2"),
        "running: ok 1\nqueued: cancelled: error task `Worker.work` failed: it was cancelled\nnext: ok 1\nqueued ran 0 times\n"
    );
}
