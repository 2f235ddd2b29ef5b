//! Objects live exactly as long as something references them.

use prism_exec::{Config, Output};
use prism_store::ObjectStore;

use crate::{guest, prism, run_ok};

fn case(name: &str) -> String {
    run_ok(guest!(LIFETIME), &[name])
}

#[test]
fn dropped_objects_and_results_are_collected() {
    assert_eq!(case("drop"), "kept by a clone: true\ncollected: true true\nresult: 42\nresult collected: true\n");
}

#[test]
fn nested_refs_keep_their_objects() {
    assert_eq!(
        case("nested"),
        "inner kept by outer: true\nouter collected, inner held by the ref read from it: true true\n\
         inner value: 5\ninner collected: true\n"
    );
}

#[test]
fn pending_tasks_hold_their_arguments_and_results_hold_what_they_nest() {
    assert_eq!(
        case("tasks"),
        "held by the pending task: true\ntask read it: 40\ncollected after the task: true\n\
         refs made by a finished task: [0, 1, 2]\n"
    );
}

#[test]
fn actors_hold_refs_in_their_state() {
    assert_eq!(case("actor"), "kept by the actor's state: true\nsum: 7\ncollected once forgotten: true\n");
}

#[test]
fn a_dropped_generator_releases_its_items() {
    assert_eq!(case("generator"), "first: 0\ntaken item collected: true\n");
}

#[test]
fn a_full_store_refuses_objects_until_refs_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--object-store-disk", "24", guest!(LIFETIME), "--", "capacity"]);
    assert!(run.success, "{}", run.stderr);
    let lines: Vec<_> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("third: limit exceeded: the object store is full"), "{}", run.stdout);
    assert!(lines[0].contains("--object-store-disk"), "{}", run.stdout);
    assert_eq!(lines[1], "after dropping one: true");
}

#[test]
fn the_memory_bound_counts_small_objects() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--object-store-memory", "1", guest!(LIFETIME), "--", "capacity-memory"]);
    assert!(run.success, "{}", run.stderr);
    let lines: Vec<_> = run.stdout.lines().collect();
    // 1 MiB holds 26 objects of 40,003 encoded bytes.
    assert!(
        lines[0].starts_with("held 26 objects of 40 kB, then: limit exceeded: the object store is full"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[1], "after dropping them: true");
}

#[test]
fn a_finished_driver_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let program = node.load("lifetime.wasm", &std::fs::read(guest!(LIFETIME)).unwrap()).await.unwrap();
        // "generator" leaves untaken items behind unless dropping closes it.
        for case in ["drop", "nested", "tasks", "actor", "generator"] {
            let job = node.job(program.clone(), Output::new(|_, _| {}));
            node.run_driver(&job, &[case.to_string()]).await.unwrap();
        }
    });
    // Actors end asynchronously after their job: give them a moment.
    for _ in 0..100 {
        if node.store.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(node.store.len(), 0);
    assert_eq!(node.store.usage(), (0, 0));
    node.store.flush().unwrap();
    let blobs = std::fs::read_dir(dir.path().join("objects/blobs")).unwrap().count();
    assert_eq!(blobs, 0);
}

#[test]
fn unreferenced_objects_from_an_earlier_run_are_evicted_first() {
    let dir = tempfile::tempdir().unwrap();
    let old = {
        let store = ObjectStore::open(dir.path()).unwrap();
        let id = store.put(vec![1; 200_000]).unwrap();
        store.flush().unwrap();
        id
    };
    let capacity = prism_store::Capacity { memory: 1 << 20, disk: 300_000, raise: "--object-store-disk" };
    let store = ObjectStore::open_with(dir.path(), capacity, prism_store::Results::Durable).unwrap();
    assert_eq!(store.usage(), (0, 200_000));
    let new = store.put(vec![2; 200_000]).unwrap();
    assert!(store.try_get(&old).unwrap().is_err(), "the orphan was evicted");
    assert_eq!(store.try_get(&new).unwrap().unwrap().len(), 200_000);
    // Now only referenced objects are left: no room.
    let full = store.put(vec![3; 200_000]).unwrap_err();
    assert!(full.to_string().contains("the object store is full"), "{full}");
}
