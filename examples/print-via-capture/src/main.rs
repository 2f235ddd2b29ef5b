//! The seed's `print_via_capture`. A Ray closure captures the driver's
//! global refs; in prism the driver sets a job global, which every task of
//! the job can read, and which keeps the objects alive until the job ends.

use prism::{Global, ObjectRef};

static REFS: Global<Vec<ObjectRef<i64>>> = Global::new("refs");

/// Prints the values of the driver's captured refs.
#[prism::remote]
fn print_via_capture() {
    println!("{:?}", prism::get_all(&REFS.get().unwrap()).unwrap());
}

fn main() {
    let (a, b, c) = (prism::put(&1).unwrap(), prism::put(&2).unwrap(), prism::put(&3).unwrap());
    REFS.set(&vec![a, b, c]).unwrap();
    prism::get(&print_via_capture::remote()).unwrap(); // prints [1, 2, 3]
}
