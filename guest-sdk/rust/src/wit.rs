//! Bindings generated from `wit/prism.wit`, and the `worker` export that runs
//! the functions registered by `#[prism::remote]`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "prism:core/task",
});

use self::prism::core::types::Payload;
use exports::prism::core::worker::{FunctionInfo, Guest};

struct Worker;

impl Guest for Worker {
    fn functions() -> Vec<FunctionInfo> {
        let text = |(name, ty): &(&str, &str)| (name.to_string(), ty.to_string());
        crate::task::registered()
            .map(|f| FunctionInfo {
                name: f.name.to_string(),
                params: f.params.iter().map(text).collect(),
                returns: f.returns.to_string(),
            })
            .collect()
    }

    fn run(function: String, args: Vec<Payload>) -> Result<Vec<u8>, String> {
        match crate::task::registered().find(|f| f.name == function) {
            Some(task) => (task.run)(&args),
            None => {
                let known: Vec<_> = crate::task::registered().map(|f| format!("`{}`", f.name)).collect();
                Err(format!("this component has no task `{function}`; it has {}", known.join(", ")))
            }
        }
    }

    fn classes() -> Vec<String> {
        crate::actor::classes().map(|c| c.name.to_string()).collect()
    }

    fn construct(class: String, args: Vec<Payload>) -> Result<(), String> {
        crate::actor::construct(&class, &args)
    }

    fn call_method(method: String, args: Vec<Payload>) -> Result<Vec<u8>, String> {
        crate::actor::call_method(&method, &args)
    }
}

export!(Worker);
