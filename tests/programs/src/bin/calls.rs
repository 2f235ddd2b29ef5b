//! Calls into other components: `prism run calls.wasm --with square.wasm
//! --with counter.wasm -- CASE` (examples/square and examples/counter).
//! tests/all/calls.rs asserts what each case prints. Its task `mixed` is
//! what tests/programs/python/interop.py calls from Python.

#[path = "../common.rs"]
mod common;
use common::show;

use prism::{Actor, ActorOptions, Arg, Component, Error, ObjectRef, Options};

/// The class `Counter` of examples/counter, as this program names it.
enum Counter {}

fn square_of(lib: &Component, x: i64) -> prism::Result<i64> {
    prism::get(&lib.remote::<i64>("square", vec![Arg::value(&x)], &Options::new()))
}

/// A task of this component that calls into another one.
#[prism::remote]
fn sum_of_squares(n: i64) -> Result<i64, Error> {
    let lib = Component::named("square")?;
    let refs: Vec<ObjectRef<i64>> =
        (0..n).map(|i| lib.remote("square", vec![Arg::value(&i)], &Options::new())).collect();
    Ok(prism::get_all(&refs)?.into_iter().sum())
}

/// Every kind of value a prism program sends, by field.
#[derive(serde::Serialize, serde::Deserialize)]
struct Mixed {
    int: i64,
    float: f64,
    text: String,
    data: prism::Bytes,
    list: Vec<i64>,
    map: std::collections::BTreeMap<String, i64>,
    none: Option<i64>,
    nested: ObjectRef<i64>,
    counter: Actor<Counter>,
}

/// Reads each field a caller in any language sent and answers in kind:
/// scalars changed, the nested ref's value read, the actor called.
#[prism::remote]
fn mixed(sent: Mixed) -> Result<Mixed, Error> {
    let counted: i64 = prism::get(&sent.counter.call("increment", vec![]).remote())?;
    let value = prism::get(&sent.nested)?;
    Ok(Mixed {
        int: sent.int + value + counted,
        float: sent.float * 2.0,
        text: sent.text.to_uppercase(),
        data: prism::Bytes::from(sent.data.iter().rev().copied().collect::<Vec<u8>>()),
        list: sent.list.iter().rev().copied().collect(),
        map: sent.map.into_iter().map(|(k, v)| (k, v + 1)).collect(),
        none: sent.none,
        nested: prism::put(&(value * 10))?,
        counter: sent.counter,
    })
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "tasks" => {
            let lib = Component::named("square").unwrap();
            println!("by name: {}", show(square_of(&lib, 7)));
            println!("by id: {}", show(square_of(&Component::from_id(*lib.id()), 8)));
            let arg = prism::put(&9i64).unwrap();
            let r: ObjectRef<i64> = lib.remote("square", vec![Arg::object(&arg)], &Options::new());
            println!("ref argument: {}", show(prism::get(&r)));
            println!("from a task: {}", show(prism::get(&sum_of_squares::remote(4))));
        }
        "actors" => {
            let lib = Component::named("counter").unwrap();
            let counter: Actor<Counter> = lib.actor("Counter", vec![], &ActorOptions::new().name("shared")).unwrap();
            let refs: Vec<ObjectRef<i64>> = (0..3).map(|_| counter.call("increment", vec![]).remote()).collect();
            println!("increments: {}", show(prism::get_all(&refs)));
            let found: Actor<Counter> = prism::get_actor("shared").unwrap();
            println!("by name: {}", show(prism::get(&found.call::<i64>("get_counter", vec![]).remote())));
            println!("unknown method: {}", show(prism::get(&counter.call::<i64>("reset", vec![]).remote())));
            let missing = lib.actor::<Counter>("Gauge", vec![], &ActorOptions::new());
            println!("unknown class: {}", show(missing.map(|_| ())));
        }
        "missing" => {
            let lib = Component::named("square").unwrap();
            let r: ObjectRef<i64> = lib.remote("cube", vec![Arg::value(&2)], &Options::new());
            println!("function: {}", show(prism::get(&r)));
            println!("name: {}", show(Component::named("sqaure").map(|_| ())));
            let r: ObjectRef<i64> = Component::from_id([7; 32]).remote("square", vec![], &Options::new());
            println!("id: {}", show(prism::get(&r)));
            println!("wrong arguments: {}", show(prism::get(&lib.remote::<i64>("square", vec![], &Options::new()))));
        }
        other => {
            eprintln!("unknown case `{other}`");
            std::process::exit(2);
        }
    }
}
