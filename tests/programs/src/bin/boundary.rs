//! A bad guest at the boundary: calls every prism import straight through
//! the WIT bindings (no SDK types in between) with garbage: unknown refs and
//! ids, wrong lengths, huge lists, mapping addresses out of bounds, calls
//! from where they make no sense. Prints one line a case, `CASE: err KIND`
//! or `CASE: ok ...`; tests/all/boundary.rs asserts which.

use prism::wit::prism::core::types::{ActorOptions, Arg, Error, NodeAffinity, ObjectRef, ResourceAmount, TaskOptions};
use prism::wit::prism::core::{actors, bytes, objects, tasks};

/// A ref nobody made.
const UNKNOWN: ObjectRef = (0x0123_4567, 0x89ab_cdef, 0xfeed_f00d, 0xdead_beef);

#[prism::remote]
fn echo(x: i64) -> i64 {
    x
}

fn options() -> TaskOptions {
    TaskOptions {
        max_retries: 0,
        retry_exceptions: false,
        num_cpus: 1,
        component: None,
        resources: Vec::new(),
        node: None,
    }
}

fn report<T: std::fmt::Debug>(case: &str, result: Result<T, Error>) {
    match result {
        // The variant's name, not its message: the test asserts the kind.
        Err(e) => {
            let kind = format!("{e:?}");
            let kind = kind.trim_start_matches("Error::").split(['(', ' ']).next().unwrap_or("?").to_string();
            println!("{case}: err {kind}");
        }
        Ok(v) => println!("{case}: ok {v:?}"),
    }
}

/// What a ref made by `remote` resolves to.
fn outcome(r: ObjectRef) -> Result<usize, Error> {
    objects::get(&[r], Some(10_000)).map(|payloads| payloads.len())
}

fn main() {
    // Objects.
    report("get-unknown", objects::get(&[UNKNOWN], Some(0)));
    report("get-huge-list", objects::get(&vec![UNKNOWN; 200_000], Some(0)));
    report("wait-more-than-given", objects::wait(&[UNKNOWN], 5, Some(0)));
    report("wait-unknown", objects::wait(&[UNKNOWN, UNKNOWN], 1, Some(0)));
    report("set-global-unknown", objects::set_global("g", UNKNOWN));
    report("get-global-unknown", objects::get_global("no such global"));
    objects::release(&vec![UNKNOWN; 10_000]);
    println!("release-unknown: done");

    // Bytes and mapping.
    report("read-unknown", bytes::read(UNKNOWN));
    report("map-unknown", bytes::map_object(UNKNOWN, 1 << 20, 1 << 16));
    let large = bytes::put_bytes(&vec![7u8; 1 << 20]).expect("a plain put works");
    report("map-past-memory", bytes::map_object(large, u32::MAX - 0xffff, 1 << 20));
    report("map-unaligned", bytes::map_object(large, (64 << 20) + 12345, 1 << 20));
    report("map-over-data", bytes::map_object(large, 0, 1 << 20));
    report("map-zero-length", bytes::map_object(large, 64 << 20, 0));
    report("unmap-unknown", bytes::unmap(96 << 20));
    report("unmap-unaligned", bytes::unmap(7));

    // Tasks.
    report("remote-unknown-function", outcome(tasks::remote("no_such_function", &[], &options())));
    report("remote-unknown-arg", outcome(tasks::remote("echo", &[Arg::Object(UNKNOWN)], &options())));
    report("remote-garbage-value", outcome(tasks::remote("echo", &[Arg::Value(vec![0xc1, 0xff, 0x00])], &options())));
    report("remote-too-many-args", outcome(tasks::remote("echo", &vec![Arg::Value(vec![1]); 10_000], &options())));
    let greedy = TaskOptions { num_cpus: u32::MAX, ..options() };
    report("remote-every-cpu", outcome(tasks::remote("echo", &[Arg::Value(vec![1])], &greedy)));
    let elsewhere = TaskOptions { component: Some(UNKNOWN), ..options() };
    report("remote-unknown-component", outcome(tasks::remote("echo", &[Arg::Value(vec![1])], &elsewhere)));
    for (case, name, amount) in [("nan", "gpu", f64::NAN), ("negative", "gpu", -1.0), ("unnamed", "", 1.0)] {
        let bad = TaskOptions { resources: vec![ResourceAmount { name: name.into(), amount }], ..options() };
        report(&format!("remote-resource-{case}"), outcome(tasks::remote("echo", &[Arg::Value(vec![1])], &bad)));
    }
    let missing = TaskOptions { resources: vec![ResourceAmount { name: "tpu".into(), amount: 1.0 }], ..options() };
    report("remote-resource-missing", outcome(tasks::remote("echo", &[Arg::Value(vec![1])], &missing)));
    let pinned = TaskOptions { node: Some(NodeAffinity { node: "no such node".into(), soft: false }), ..options() };
    report("remote-node-unknown", outcome(tasks::remote("echo", &[Arg::Value(vec![1])], &pinned)));
    report("generator-unknown-function", outcome(tasks::remote_generator("no_such_function", &[], &options())));
    report("next-item-not-a-generator", tasks::next_item(large, Some(0)));
    report("next-item-unknown", tasks::next_item(UNKNOWN, Some(0)));
    tasks::close_generator(UNKNOWN);
    println!("close-generator-unknown: done");
    report("yield-outside-a-generator", tasks::yield_item(large));
    report("cancel-unknown", tasks::cancel(UNKNOWN, true));
    report("component-unknown", tasks::component("no such component"));

    // Actors.
    let actor = ActorOptions {
        component: None,
        name: None,
        detached: false,
        max_restarts: 0,
        max_task_retries: 0,
        resources: Vec::new(),
        node: None,
    };
    report("actor-unknown-class", actors::create("NoSuchClass", &[], &actor));
    report("actor-call-unknown", outcome(actors::call(UNKNOWN, "method", &[])));
    report("actor-generator-unknown", outcome(actors::call_generator(UNKNOWN, "method", &[])));
    report("actor-kill-unknown", actors::kill(UNKNOWN, true));
    report("get-actor-unknown", actors::get_actor("no such actor"));

    // And the node still runs what is right.
    let seven = tasks::remote("echo", &[Arg::Value(vec![7])], &options());
    report("after", objects::get(&[seven], Some(10_000)).map(|p| format!("{p:?}")));
}
