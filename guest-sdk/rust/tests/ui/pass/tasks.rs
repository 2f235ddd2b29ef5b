use prism::{ObjectRef, Options};

#[prism::remote]
fn square(x: i64) -> i64 {
    x * x
}

#[prism::remote]
fn nothing() {}

#[prism::remote]
fn fallible(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

#[prism::remote]
fn refs(list: Vec<ObjectRef<i64>>, n: u8) -> usize {
    list.len() + usize::from(n)
}

fn main() {
    // Type-checks the generated API; calling it needs a prism host.
    if false {
        let a: ObjectRef<i64> = square::remote(3);
        let _: ObjectRef<i64> = square::remote(&a);
        let _: ObjectRef<()> = nothing::remote();
        let _: ObjectRef<u32> = fallible::remote_with(&Options::new().max_retries(2), "7".to_string());
        let _: ObjectRef<usize> = refs::remote(vec![a], 1);
    }
    assert_eq!(square(3), 9);
}
