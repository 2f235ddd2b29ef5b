//! Objects and compiled components survive a restart.

use prism_exec::Config;
use prism_store::ObjectStore;

use crate::{guest, prism_with_env};

#[test]
fn objects_survive_a_restart_and_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let small = b"small object".to_vec();
    let large: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (a, b, result) = {
        let store = ObjectStore::open(dir.path()).unwrap();
        let a = store.put(small.clone()).unwrap();
        let b = store.put(large.clone()).unwrap();
        let result = store.pending();
        store.complete(result, Ok(b"task result".to_vec()), None);
        store.flush().unwrap();
        (a, b, result)
    };
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_eq!(store.try_get(&a).unwrap().unwrap().to_vec().unwrap(), small);
    assert_eq!(store.try_get(&b).unwrap().unwrap().to_vec().unwrap(), large);
    assert_eq!(store.try_get(&result).unwrap().unwrap().to_vec().unwrap(), b"task result");
}

#[test]
fn corrupt_blob_is_detected_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let large = vec![7u8; 200_000];
    let id = {
        let store = ObjectStore::open(dir.path()).unwrap();
        let id = store.put(large).unwrap();
        store.flush().unwrap();
        id
    };
    let blob = dir.path().join("blobs").join(id.to_string());
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let err = store.try_get(&id).unwrap().unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn failures_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let failure = prism_store::Failure::task("f", "boom");
    let id = {
        let store = ObjectStore::open(dir.path()).unwrap();
        let id = store.pending();
        store.complete(id, Err(failure.clone()), None);
        id
    };
    let store = ObjectStore::open(dir.path()).unwrap();
    assert_eq!(*store.try_get(&id).unwrap().unwrap_err(), failure);
}

#[test]
fn second_run_skips_compilation() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("RUST_LOG", "prism_runtime=info")];
    let first = prism_with_env(dir.path(), &["run", guest!(SQUARE)], &env);
    assert!(first.stderr.contains("compiled component"), "{}", first.stderr);
    assert!(!first.stderr.contains("from cache"), "{}", first.stderr);
    let second = prism_with_env(dir.path(), &["run", guest!(SQUARE)], &env);
    assert!(second.stderr.contains("loaded compiled component from cache"), "{}", second.stderr);
    assert_eq!(second.stdout, "[0, 1, 4, 9]\n");
    // The node's library sees the same cache.
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let program = rt.block_on(node.load("square.wasm", &std::fs::read(guest!(SQUARE)).unwrap())).unwrap();
    assert!(program.from_cache);
}
