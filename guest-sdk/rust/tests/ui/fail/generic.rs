#[prism::remote]
fn first<T: Clone>(list: Vec<T>) -> T {
    list[0].clone()
}

fn main() {}
