//! Host bindings for `wit/prism.wit`, generated once here.
//!
//! Imports are async (a `get` suspends the guest, not the thread) and
//! trappable: the outer `Result` of each host function is a trap, the inner
//! one the WIT `error` the guest handles.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "prism:core/task",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::prism::core::{objects, tasks, types};
