#[prism::remote(num_cpus = 2)]
fn square(x: i64) -> i64 {
    x * x
}

fn main() {}
