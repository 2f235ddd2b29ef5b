//! The seed's `echo_and_get`: refs nested inside an argument are not
//! resolved; the task sees refs and may `get` them.

use prism::ObjectRef;

/// Prints its refs, then their values.
#[prism::remote]
fn echo_and_get(x_list: Vec<ObjectRef<i64>>) {
    println!("args: {x_list:?}");
    println!("values: {:?}", prism::get_all(&x_list).unwrap());
}

fn main() {
    let (a, b, c) = (prism::put(&1).unwrap(), prism::put(&2).unwrap(), prism::put(&3).unwrap());
    prism::get(&echo_and_get::remote(vec![a, b, c])).unwrap();
}
