//! Every program in examples/ runs through `prism run` and prints what the
//! seed says it prints.

use crate::{guest, run_ok};

#[test]
fn square() {
    assert_eq!(run_ok(guest!(SQUARE), &[]), "[0, 1, 4, 9]\n");
}

#[test]
fn put_get() {
    assert_eq!(run_ok(guest!(PUT_GET), &[]), "get(put(1)) == 1\n[0, 1, 2]\n");
}

#[test]
fn echo_by_value_and_by_ref() {
    assert_eq!(run_ok(guest!(ECHO), &[]), "(echo) 1 2 3\n(echo) 1 2 3\n");
}

#[test]
fn echo_and_get_sees_nested_refs() {
    assert_echo_and_get(&run_ok(guest!(ECHO_AND_GET), &[]));
}

/// What `echo_and_get` prints, in any language: three refs, then their values.
pub(crate) fn assert_echo_and_get(out: &str) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("(echo_and_get) args: [ObjectRef("), "{out}");
    assert_eq!(lines[0].matches("ObjectRef(").count(), 3, "{out}");
    assert_eq!(lines[1], "(echo_and_get) values: [1, 2, 3]");
}

#[test]
fn print_via_capture() {
    assert_eq!(run_ok(guest!(PRINT_VIA_CAPTURE), &[]), "(print_via_capture) [1, 2, 3]\n");
}

#[test]
fn nested_tasks() {
    assert_eq!(run_ok(guest!(NESTED_TASKS), &[]), "sum of squares below 10 = 285\n");
}

#[test]
fn ocr_pages_in_order() {
    assert_ocr_pages(&run_ok(guest!(OCR), &[]));
}

/// What the OCR story prints, in any language: every page, in page order,
/// recognized exactly.
pub(crate) fn assert_ocr_pages(out: &str) {
    let pages: Vec<&str> = out.lines().filter(|l| l.starts_with("page ")).collect();
    assert_eq!(pages.len(), 12, "{out}");
    for (n, line) in pages.iter().enumerate() {
        assert!(line.starts_with(&format!("page {n}: ")), "page {n} out of order: {out}");
    }
    assert!(out.ends_with("12 of 12 pages recognized exactly\n"), "{out}");
}

#[test]
fn counter_actor_keeps_state() {
    assert_eq!(run_ok(guest!(COUNTER), &[]), "[2, 3, 4, 5]\ncounter = 5\n");
}

#[test]
fn bank_balance_is_exact_under_concurrent_callers() {
    assert_eq!(
        run_ok(guest!(BANK), &[]),
        "20 customers, 3000 operations, balance 11500\nexact: true\n\
         task `Account.withdraw` failed: insufficient funds: balance 11500, asked 1000000\n"
    );
}

#[test]
fn ocr_actor_pool_keeps_its_models() {
    let out = run_ok(guest!(OCR_ACTORS), &[]);
    assert!(out.contains("12 of 12 pages recognized exactly\n"), "{out}");
    assert!(
        out.ends_with(
            "recognizer 0: 6 pages with one model of 16 MiB\nrecognizer 1: 6 pages with one model of 16 MiB\n"
        ),
        "{out}"
    );
}

#[test]
fn generator_yields_large_values_one_at_a_time() {
    let out = run_ok(guest!(GENERATOR), &["3"]);
    let values: Vec<&str> = out.lines().filter(|l| l.starts_with("value ")).collect();
    assert_eq!(
        values,
        [
            "value 0: 100000000 bytes, mapped: true, max 126",
            "value 1: 100000000 bytes, mapped: true, max 126",
            "value 2: 100000000 bytes, mapped: true, max 126",
        ]
    );
    for i in 0..3 {
        assert!(out.contains(&format!("(large_values_generator) yielding return value {i}\n")), "{out}");
    }
}
