//! Ray's first example: a sequential loop made parallel with `remote`.

#[prism::remote]
fn square(x: i64) -> i64 {
    x * x
}

fn main() {
    let futures: Vec<_> = (0..4).map(square::remote).collect();
    println!("{:?}", prism::get_all(&futures).unwrap()); // [0, 1, 4, 9]
}
