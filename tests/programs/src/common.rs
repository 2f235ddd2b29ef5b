//! Helpers shared by the test programs (included with `#[path]`).

use std::time::Duration;

/// Returns `value` after sleeping `ms` milliseconds: a task whose result is
/// late by design.
#[prism::remote]
pub fn value_after(ms: u64, value: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    value
}

/// `ok <value>` or `error <message>`, as the tests expect.
pub fn show<T: std::fmt::Debug>(r: prism::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error {e}"),
    }
}
