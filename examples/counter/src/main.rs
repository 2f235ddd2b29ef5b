//! The seed's `Counter`: `@ray.remote` on a class makes an actor, one
//! long-lived instance whose memory holds the count.

#[prism::actor]
struct Counter {
    value: i64,
}

#[prism::actor]
impl Counter {
    fn new() -> Self {
        Counter { value: 0 }
    }

    fn increment(&mut self) -> i64 {
        self.value += 1;
        self.value
    }

    fn get_counter(&self) -> i64 {
        self.value
    }
}

fn main() {
    let counter = Counter::remote(); // creates the actor
    let r = counter.increment().remote(); // ObjectRef<i64>
    assert_eq!(prism::get(&r).unwrap(), 1);
    let refs: Vec<_> = (0..4).map(|_| counter.increment().remote()).collect();
    println!("{:?}", prism::get_all(&refs).unwrap()); // [2, 3, 4, 5]
    println!("counter = {}", prism::get(&counter.get_counter().remote()).unwrap()); // 5
}
