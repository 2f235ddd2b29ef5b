//! Tasks calling tasks: `sum_of_squares` fans out to `square` and gathers the
//! results. While it waits in `get` it gives its cpu back, so the squares can
//! run even on a one-worker node.

#[prism::remote]
fn square(x: i64) -> i64 {
    x * x
}

#[prism::remote]
fn sum_of_squares(n: i64) -> i64 {
    let refs: Vec<_> = (0..n).map(square::remote).collect();
    prism::get_all(&refs).unwrap().into_iter().sum()
}

fn main() {
    let total = prism::get(&sum_of_squares::remote(10)).unwrap();
    println!("sum of squares below 10 = {total}"); // 285
}
