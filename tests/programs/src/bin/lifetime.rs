//! Object lifetime, one case per argument: `prism run lifetime.wasm -- CASE`.
//! tests/all/lifetime.rs asserts the output. An object is looked up by its
//! raw id (which holds nothing) to see whether it still exists.

use std::time::Duration;

use prism::ObjectRef;
use prism::wit::prism::core::objects;

/// Whether the store still has the object `id`.
fn exists(id: &[u8; 32]) -> bool {
    // An empty `wait` tells the host about refs dropped so far.
    prism::wait::<()>(&[]).unwrap();
    match objects::get(&[prism::wit::words(id)], Some(1000)) {
        Ok(_) => true,
        Err(prism::wit::prism::core::types::Error::NotFound(_)) => false,
        Err(e) => panic!("unexpected: {e:?}"),
    }
}

#[prism::remote]
fn make(n: i64) -> i64 {
    n * 2
}

/// Reads refs nested in its argument after a while: they must still exist.
#[prism::remote]
fn sum_later(refs: Vec<ObjectRef<i64>>) -> i64 {
    std::thread::sleep(Duration::from_millis(200));
    prism::get_all(&refs).unwrap().into_iter().sum()
}

/// Returns refs to objects it made: they must outlive the task.
#[prism::remote]
fn make_refs(n: i64) -> Vec<ObjectRef<i64>> {
    (0..n).map(|i| prism::put(&i).unwrap()).collect()
}

#[prism::remote]
fn numbers(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

/// Keeps refs in its state between calls.
#[prism::actor]
struct Keeper {
    kept: Vec<ObjectRef<i64>>,
}

#[prism::actor]
impl Keeper {
    fn new() -> Self {
        Keeper { kept: Vec::new() }
    }

    fn keep(&mut self, refs: Vec<ObjectRef<i64>>) {
        self.kept.extend(refs);
    }

    fn sum(&self) -> i64 {
        prism::get_all(&self.kept).unwrap().into_iter().sum()
    }

    fn forget(&mut self) {
        self.kept.clear();
    }
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "drop" => {
            let big = prism::put_bytes(&vec![7u8; 1 << 20]).unwrap();
            let small = prism::put(&"small".to_string()).unwrap();
            let (big_id, small_id) = (*big.id(), *small.id());
            let copy = big.clone();
            drop(big);
            println!("kept by a clone: {}", exists(&big_id));
            drop(copy);
            drop(small);
            println!("collected: {} {}", !exists(&big_id), !exists(&small_id));
            let result = make::remote(21);
            let result_id = *result.id();
            println!("result: {}", prism::get(&result).unwrap());
            drop(result);
            println!("result collected: {}", !exists(&result_id));
        }
        "nested" => {
            let inner = prism::put(&5i64).unwrap();
            let inner_id = *inner.id();
            let outer = prism::put(&vec![inner]).unwrap();
            let outer_id = *outer.id();
            println!("inner kept by outer: {}", exists(&inner_id));
            let got: Vec<ObjectRef<i64>> = prism::get(&outer).unwrap();
            drop(outer);
            println!(
                "outer collected, inner held by the ref read from it: {} {}",
                !exists(&outer_id),
                exists(&inner_id)
            );
            println!("inner value: {}", prism::get(&got[0]).unwrap());
            drop(got);
            println!("inner collected: {}", !exists(&inner_id));
        }
        "tasks" => {
            let r = prism::put(&40i64).unwrap();
            let id = *r.id();
            let pending = sum_later::remote(vec![r]);
            println!("held by the pending task: {}", exists(&id));
            println!("task read it: {}", prism::get(&pending).unwrap());
            drop(pending);
            println!("collected after the task: {}", !exists(&id));
            let refs = prism::get(&make_refs::remote(3)).unwrap();
            println!("refs made by a finished task: {:?}", prism::get_all(&refs).unwrap());
        }
        "actor" => {
            let keeper = Keeper::remote();
            let r = prism::put(&7i64).unwrap();
            let id = *r.id();
            prism::get(&keeper.keep(vec![r]).remote()).unwrap();
            println!("kept by the actor's state: {}", exists(&id));
            println!("sum: {}", prism::get(&keeper.sum().remote()).unwrap());
            prism::get(&keeper.forget().remote()).unwrap();
            // The actor reports its drops at its next blocking call.
            prism::get(&keeper.sum().remote()).unwrap();
            println!("collected once forgotten: {}", !exists(&id));
        }
        "generator" => {
            let mut items = numbers::remote(5);
            let first = items.next().unwrap();
            let first_id = *first.id();
            // Let the generator finish: four items are waiting, untaken.
            std::thread::sleep(Duration::from_millis(200));
            drop(items);
            println!("first: {}", prism::get(&first).unwrap());
            drop(first);
            println!("taken item collected: {}", !exists(&first_id));
        }
        "capacity" => {
            // Run with --object-store-disk 24: two 10 MiB objects fit, three do not.
            let blob = |b: u8| prism::put_bytes(&vec![b; 10 << 20]);
            let (a, b) = (blob(1).unwrap(), blob(2).unwrap());
            match blob(3) {
                Err(e) => println!("third: {e}"),
                Ok(_) => println!("third fit"),
            }
            drop(a);
            prism::wait::<()>(&[]).unwrap();
            println!("after dropping one: {}", blob(3).is_ok());
            drop(b);
        }
        "capacity-memory" => {
            // Run with --object-store-memory 1: small objects held in memory
            // past 1 MiB do not fit; dropping them makes room.
            let mut held = Vec::new();
            let error = loop {
                match prism::put(&vec![held.len() as u8; 40_000]) {
                    Ok(r) => held.push(r),
                    Err(e) => break e,
                }
            };
            println!("held {} objects of 40 kB, then: {error}", held.len());
            held.clear();
            prism::wait::<()>(&[]).unwrap();
            println!("after dropping them: {}", prism::put(&vec![0u8; 40_000]).is_ok());
        }
        other => panic!("unknown case `{other}`"),
    }
}
