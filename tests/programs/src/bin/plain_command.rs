//! A WASI command that is not a prism program: loading it must fail with a
//! message naming the missing `prism:core/worker` export.

fn main() {
    println!("not a prism program");
}
