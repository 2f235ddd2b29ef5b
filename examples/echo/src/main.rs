//! The seed's `echo`: a task takes values, or refs at the top level of its
//! arguments, which the host resolves before the task runs.

/// Prints its input values.
#[prism::remote]
fn echo(a: i64, b: i64, c: i64) {
    println!("{a} {b} {c}");
}

fn main() {
    // By value.
    prism::get(&echo::remote(1, 2, 3)).unwrap();
    // By ref: the task still sees the values.
    let (a, b, c) = (prism::put(&1).unwrap(), prism::put(&2).unwrap(), prism::put(&3).unwrap());
    prism::get(&echo::remote(a, b, c)).unwrap();
}
