use prism::{Actor, ActorOptions, ObjectRef};

#[prism::actor]
struct Counter {
    value: i64,
}

#[prism::actor]
impl Counter {
    fn new(start: i64) -> Self {
        Counter { value: start }
    }

    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }

    fn get(&self) -> i64 {
        self.value
    }

    fn checked(&self, limit: i64) -> Result<i64, String> {
        if self.value > limit { Err("too big".into()) } else { Ok(self.value) }
    }

    /// Not a method or constructor: stays a plain associated function.
    fn describe() -> &'static str {
        "a counter"
    }
}

#[prism::actor]
struct Silent;

#[prism::actor]
impl Silent {
    fn new() -> Result<Self, String> {
        Ok(Silent)
    }
}

fn main() {
    if false {
        let c: Actor<Counter> = Counter::remote(1);
        let _: ObjectRef<i64> = c.add(2).remote();
        let _: ObjectRef<i64> = c.get().remote();
        let _: ObjectRef<i64> = c.checked(10).remote();
        let _: prism::Result<Actor<Counter>> = Counter::remote_with(&ActorOptions::new().name("c"), 0);
        let _: Actor<Silent> = Silent::remote();
    }
    assert_eq!(Counter::describe(), "a counter");
}
