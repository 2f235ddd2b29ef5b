//! Large objects are mapped into guests, never copied, and never leak
//! between instances.

use crate::{guest, prism, run_ok};

#[test]
fn get_of_a_large_byte_string_is_a_mapping() {
    let out = run_ok(guest!(MAPPING), &["get"]);
    assert_eq!(
        out,
        "mapped: true, aligned: true\npattern: true\nas u64: [0, 1, 2, 3]\nsmall mapped: false, \"small\"\n"
    );
}

#[test]
fn large_values_of_any_type_decode_from_the_mapping() {
    let out = run_ok(guest!(MAPPING), &["typed"]);
    assert_eq!(out, "decoded: true\nput of bytes = put_bytes: true\nas Bytes: true\n");
}

#[test]
fn two_tasks_read_one_object_mapped_as_their_argument() {
    let out = run_ok(guest!(MAPPING), &["args"]);
    assert_eq!(out, "mapped: true, sum right: true\nmapped: true, sum right: true\n");
}

#[test]
fn writes_to_a_mapping_are_private_and_the_file_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", guest!(MAPPING), "--", "copy-on-write"]);
    assert!(run.success, "{}", run.stderr);
    // Each check maps the object afresh after a write: the file is unchanged.
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some("guest wrote: true, object unchanged: true"));
    assert_eq!(lines.next(), Some("driver's copy-on-write: true"));
    // Still byte for byte what was put: the store reads the file back and
    // checks it against its hash.
    assert_eq!(lines.next(), Some("verified: true"));
}

#[test]
fn host_writes_into_a_freed_mapping_do_not_crash() {
    let out = run_ok(guest!(MAPPING), &["host-writes"]);
    assert_eq!(out, "host wrote into the mapped pages: true, value right: true\n");
}

#[test]
fn a_fresh_instance_in_a_mapped_slot_reads_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--max-instances", "2", guest!(MAPPING), "--", "slot-reuse"]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.stdout.contains("trap with the object mapped"), "{}", run.stdout);
    assert!(run.stdout.ends_with("next instance reads zeros there: true\n"), "{}", run.stdout);
}

#[test]
fn mapping_refuses_static_data_misaligned_buffers_and_small_objects() {
    let out = run_ok(guest!(MAPPING), &["bad-window"]);
    let lines: Vec<_> = out.lines().collect();
    assert!(lines[0].contains("lies in the component's initial data"), "{out}");
    assert!(lines[1].contains("is not aligned to 65536 bytes"), "{out}");
    assert!(lines[2].contains("is not inside the guest's memory"), "{out}");
    assert!(lines[3].contains("is small: its value comes with `get`"), "{out}");
    assert!(lines[4].contains("no mapping starts at address"), "{out}");
}

#[test]
fn an_instance_holds_at_most_max_mappings_live_mappings() {
    let out = run_ok(guest!(MAPPING), &["mapping-cap"]);
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[0], "mapped: 256", "{out}");
    assert!(lines[1].starts_with("limit exceeded: an instance may hold at most 256 mapped objects"), "{out}");
    assert!(lines[1].contains("MAX_MAPPINGS"), "{out}");
    assert_eq!(lines[2], "after dropping one: true", "{out}");
}
