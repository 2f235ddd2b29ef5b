//! A prism component without `main`: its tasks can run, but `prism run`
//! must refuse it with a message saying it has no `wasi:cli/run`.

/// Doubles its input.
#[prism::remote]
pub fn double(x: i64) -> i64 {
    2 * x
}
