//! Bindings generated from `wit/prism.wit`, and the `worker` export that runs
//! the functions registered by `#[prism::remote]`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "prism:core/task",
});

use self::prism::core::types::Payload;
pub use crate::object_ref::to_words as words;
use crate::object_ref::{begin_call, flush_releases};
use exports::prism::core::worker::{CallError, ClassInfo, FunctionInfo, Guest};

struct Worker;

type Params = &'static [(&'static str, &'static str)];

fn texts(params: Params) -> Vec<(String, String)> {
    params.iter().map(|(name, ty)| (name.to_string(), ty.to_string())).collect()
}

fn info(name: &str, params: Params, returns: &str) -> FunctionInfo {
    FunctionInfo { name: name.to_string(), params: texts(params), returns: returns.to_string() }
}

impl Guest for Worker {
    fn functions() -> Vec<FunctionInfo> {
        crate::task::registered().map(|f| info(f.name, f.params, f.returns)).collect()
    }

    fn run(function: String, args: Vec<Payload>) -> Result<Vec<u8>, CallError> {
        begin_call();
        let out = match crate::task::registered().find(|f| f.name == function) {
            Some(task) => (task.run)(&args),
            None => {
                let known: Vec<_> = crate::task::registered().map(|f| format!("`{}`", f.name)).collect();
                Err(CallError::Returned(format!(
                    "this component has no task `{function}`; it has {}",
                    known.join(", ")
                )))
            }
        };
        // What the call dropped goes back now (what its result holds, once stored).
        flush_releases();
        out
    }

    fn classes() -> Vec<ClassInfo> {
        crate::actor::classes()
            .map(|c| ClassInfo {
                name: c.name.to_string(),
                params: texts(c.params),
                methods: c.methods.iter().map(|m| info(m.name, m.params, m.returns)).collect(),
            })
            .collect()
    }

    fn construct(class: String, args: Vec<Payload>) -> Result<(), CallError> {
        begin_call();
        let out = crate::actor::construct(&class, &args);
        flush_releases();
        out
    }

    fn call_method(mut method: String, mut args: Vec<Payload>) -> Result<Vec<u8>, CallError> {
        // The calls queued behind this one run here too: `next-call`
        // answers each and hands over the next.
        loop {
            begin_call();
            let out = crate::actor::call_method(&method, &args);
            flush_releases();
            (method, args) = match prism::core::actors::next_call(&out?) {
                Some(next) => next,
                None => return Ok(Vec::new()),
            };
        }
    }
}

export!(Worker);
