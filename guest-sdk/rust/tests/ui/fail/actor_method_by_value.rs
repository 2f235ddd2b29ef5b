#[prism::actor]
struct Counter;

#[prism::actor]
impl Counter {
    fn new() -> Self {
        Counter
    }

    fn consume(self) -> i64 {
        0
    }
}

fn main() {}
