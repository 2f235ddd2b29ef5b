#[prism::actor]
struct Counter {
    value: i64,
}

#[prism::actor]
impl Counter {
    fn get(&self) -> i64 {
        self.value
    }
}

fn main() {}
