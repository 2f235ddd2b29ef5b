//! Replays the committed corpus (`tests/fuzz/corpus/<target>/`) through
//! every fuzz target on stable Rust: what fuzzing found stays fixed.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    for input in &inputs {
        let data = std::fs::read(input).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            panic!("{} fails: {:?}", input.display(), panic.downcast_ref::<String>());
        }
    }
    eprintln!("{target}: {} inputs replayed", inputs.len());
}

#[test]
fn values() {
    replay("values", prism_fuzz::values);
}

#[test]
fn nested_refs() {
    replay("nested_refs", prism_fuzz::nested_refs);
}

#[test]
fn index_record() {
    replay("index_record", prism_fuzz::index_record);
}

#[test]
fn http_request() {
    replay("http_request", prism_fuzz::http_request);
}
