//! Host bindings for `wit/prism.wit`, generated once here.
//!
//! Imports are async (a `get` suspends the guest, not the thread) and
//! trappable: the outer `Result` of each host function is a trap, the inner
//! one the WIT `error` the guest handles.
//!
//! `prism:core/bytes` and `prism:core/objects` are left out and registered
//! by hand: `bytes` reads the guest's memory in place, which generated
//! bindings cannot (they copy lists into a `Vec`), in `mapping.rs`; and
//! `objects` lifts lists of refs as flat arrays, in `objects.rs`.

wasmtime::component::bindgen!({
    path: "../../wit",
    inline: "
        package prism:host;
        world task-host {
            import prism:core/tasks@0.3.0;
            import prism:core/actors@0.3.0;
            export prism:core/worker@0.3.0;
        }
    ",
    world: "prism:host/task-host",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "prism:core/tasks.task-function": crate::imports::TaskFunction,
        "prism:core/actors.actor-method": crate::imports::ActorMethod,
    },
});

pub use self::exports::prism::core::worker::CallError;
pub use self::prism::core::{actors, tasks, types};
