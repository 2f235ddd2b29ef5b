#[prism::remote]
fn greet(name: &str) -> String {
    format!("hello {name}")
}

fn main() {}
