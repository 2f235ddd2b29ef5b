//! Calls into other components (`prism run --with`), through
//! tests/programs/src/bin/calls.rs and the examples it calls.

use crate::{guest, prism};

fn case(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let run =
        prism(dir.path(), &["run", guest!(CALLS), "--with", guest!(SQUARE), "--with", guest!(COUNTER), "--", name]);
    assert!(run.success, "case {name} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

#[test]
fn tasks_of_another_component_by_name_or_id_from_the_driver_and_from_tasks() {
    assert_eq!(case("tasks"), "by name: ok 49\nby id: ok 64\nref argument: ok 81\nfrom a task: ok 14\n");
}

#[test]
fn actors_of_another_component_are_created_called_and_found_by_name() {
    assert_eq!(
        case("actors"),
        "increments: ok [1, 2, 3]\nby name: ok 3\n\
         unknown method: error task `Counter.reset` failed: actor class `Counter` has no method `reset`; it has `increment`, `get_counter`\n\
         unknown class: error invalid argument: component `counter.wasm` has no actor class `Gauge`; it has `Counter`\n"
    );
}

#[test]
fn a_missing_component_or_function_is_named() {
    let out = case("missing");
    let expect = [
        "function: error invalid argument: component `square.wasm` has no task `cube`; it has `square`\n",
        "name: error not found: no component named `sqaure`: `--with` loaded `square`, `counter`\n",
        "id: error not found: no component `0707070707070707070707070707070707070707070707070707070707070707` in this namespace",
        "wrong arguments: error task `square` failed: `square` takes 1 argument(s), got 0\n",
    ];
    for e in expect {
        assert!(out.contains(e), "missing {e:?} in:\n{out}");
    }
}

#[test]
fn a_bad_with_component_fails_before_the_driver_starts() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let run = prism(dir.path(), &["run", guest!(CALLS), "--with", junk.to_str().unwrap(), "--", "tasks"]);
    assert!(!run.success);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("cannot load `--with junk.wasm`"), "{}", run.stderr);
    let twice =
        prism(dir.path(), &["run", guest!(CALLS), "--with", guest!(SQUARE), "--with", guest!(SQUARE), "--", "tasks"]);
    assert!(twice.stderr.contains("two `--with` components are named `square`: rename one"), "{}", twice.stderr);
}
