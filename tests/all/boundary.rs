//! A bad guest at the boundary (tests/programs/src/bin/boundary.rs) calls
//! every import with garbage through the raw WIT bindings.

use std::sync::Arc;

use parking_lot::Mutex;
use prism_exec::{Config, DriverExit, Output};

use crate::guest;

#[test]
fn a_guest_calling_every_import_with_garbage_gets_errors_and_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    let printed = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let exit = runtime.block_on(async {
        let program = node.load("boundary.wasm", &std::fs::read(guest!(BOUNDARY)).unwrap()).await.unwrap();
        let sink = printed.clone();
        let job = node.job(program, Output::new(move |_, bytes| sink.lock().extend_from_slice(bytes)));
        node.run_driver(&job, &[]).await.unwrap()
    });
    let printed = String::from_utf8(printed.lock().clone()).unwrap();
    assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}\n{printed}");
    let outcomes: std::collections::BTreeMap<&str, &str> =
        printed.lines().filter_map(|line| line.split_once(": ")).collect();
    let expected = [
        ("get-unknown", "err NotFound"),
        ("get-huge-list", "err NotFound"),
        ("wait-more-than-given", "err InvalidArgument"),
        ("wait-unknown", "err InvalidArgument"),
        ("set-global-unknown", "err NotFound"),
        ("get-global-unknown", "err NotFound"),
        ("release-unknown", "done"),
        ("read-unknown", "err NotFound"),
        ("map-unknown", "err NotFound"),
        ("map-past-memory", "err InvalidArgument"),
        ("map-unaligned", "err InvalidArgument"),
        ("map-over-data", "err InvalidArgument"),
        ("map-zero-length", "err InvalidArgument"),
        ("unmap-unknown", "err InvalidArgument"),
        ("unmap-unaligned", "err InvalidArgument"),
        ("remote-unknown-function", "err InvalidArgument"),
        ("remote-unknown-arg", "err TaskFailed"),
        ("remote-garbage-value", "err TaskFailed"),
        ("remote-too-many-args", "err TaskFailed"),
        ("remote-every-cpu", "err LimitExceeded"),
        ("remote-unknown-component", "err NotFound"),
        ("remote-resource-nan", "err InvalidArgument"),
        ("remote-resource-negative", "err InvalidArgument"),
        ("remote-resource-unnamed", "err InvalidArgument"),
        ("remote-resource-missing", "err LimitExceeded"),
        ("remote-node-unknown", "err LimitExceeded"),
        ("generator-unknown-function", "err NotFound"),
        ("next-item-not-a-generator", "err NotFound"),
        ("next-item-unknown", "err NotFound"),
        ("close-generator-unknown", "done"),
        ("yield-outside-a-generator", "err InvalidArgument"),
        ("cancel-unknown", "err NotFound"),
        ("component-unknown", "err NotFound"),
        ("actor-unknown-class", "err InvalidArgument"),
        ("actor-call-unknown", "err NotFound"),
        ("actor-generator-unknown", "err NotFound"),
        ("actor-kill-unknown", "err NotFound"),
        ("get-actor-unknown", "err NotFound"),
    ];
    let got: Vec<(&str, &str)> =
        expected.iter().map(|(case, _)| (*case, outcomes.get(case).copied().unwrap_or("?"))).collect();
    assert_eq!(got, expected, "\n{printed}");
    assert_eq!(outcomes["after"], "ok \"[Payload::Bytes([7])]\"", "{printed}");
    // Nothing the garbage made or named stays behind once the driver ends.
    for _ in 0..100 {
        if node.store.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(node.store.len(), 0);
}
