//! The seed's object store examples: `put` returns a ref, `get` its value.

fn main() {
    let object_ref = prism::put(&1i64).unwrap();
    assert_eq!(prism::get(&object_ref).unwrap(), 1);
    println!("get(put(1)) == {}", prism::get(&object_ref).unwrap());

    let refs: Vec<_> = (0..3i64).map(|i| prism::put(&i).unwrap()).collect();
    println!("{:?}", prism::get_all(&refs).unwrap()); // [0, 1, 2]
}
