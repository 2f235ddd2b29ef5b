//! The host library used directly: load a component, run tasks, read objects.

use std::sync::Arc;

use parking_lot::Mutex;
use prism_exec::{Config, DriverExit, Output, Stream, TaskArg, TaskOptions};
use prism_store::Failure;

use crate::guest;

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn remote_task_by_value_and_by_ref() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    runtime().block_on(async {
        let wasm = std::fs::read(guest!(SQUARE)).unwrap();
        let program = node.load("square.wasm", &wasm).await.unwrap();
        assert_eq!(program.functions, ["square"]);
        assert!(program.is_command());
        let job = node.job(program, Output::stdio());

        let by_value = node.remote(&job, "square".into(), vec![TaskArg::Value(encode(&7i64))], TaskOptions::default());
        let seven = node.store.put(encode(&9i64)).unwrap();
        let by_ref = node.remote(&job, "square".into(), vec![TaskArg::Object(seven)], TaskOptions::default());
        let value = node.store.get(&by_value, None).await.unwrap();
        assert_eq!(rmp_serde::from_slice::<i64>(&value.to_vec().unwrap()).unwrap(), 49);
        let value = node.store.get(&by_ref, None).await.unwrap();
        assert_eq!(rmp_serde::from_slice::<i64>(&value.to_vec().unwrap()).unwrap(), 81);
    });
}

#[test]
fn wrong_arguments_fail_the_task_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    runtime().block_on(async {
        let program = node.load("square.wasm", &std::fs::read(guest!(SQUARE)).unwrap()).await.unwrap();
        let job = node.job(program, Output::stdio());
        let none = node.remote(&job, "square".into(), vec![], TaskOptions::default());
        let text = node.remote(&job, "square".into(), vec![TaskArg::Value(encode(&"seven"))], TaskOptions::default());
        let failure = |id| {
            let node = node.clone();
            async move {
                match node.store.get(&id, None).await {
                    Err(prism_store::GetError::Failed(f)) => f.to_string(),
                    other => panic!("expected a failure, got {other:?}"),
                }
            }
        };
        assert_eq!(failure(none).await, "task `square` failed: `square` takes 1 argument(s), got 0");
        let msg = failure(text).await;
        assert!(msg.starts_with("task `square` failed: argument `x` of `square` does not decode as `i64`"), "{msg}");
    });
}

#[test]
fn task_output_is_tagged_with_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    let seen: Arc<Mutex<Vec<(Stream, String)>>> = Arc::default();
    let sink = seen.clone();
    runtime().block_on(async {
        let program = node.load("echo.wasm", &std::fs::read(guest!(ECHO)).unwrap()).await.unwrap();
        let job = node.job(program, Output::new(move |s, b| sink.lock().push((s, String::from_utf8_lossy(b).into()))));
        let args = [1i64, 2, 3].iter().map(|v| TaskArg::Value(encode(v))).collect();
        let done = node.remote(&job, "echo".into(), args, TaskOptions::default());
        node.store.get(&done, None).await.unwrap();
    });
    assert_eq!(*seen.lock(), [(Stream::Stdout, "(echo) 1 2 3\n".to_string())]);
}

#[test]
fn unknown_ref_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    let id = "00".repeat(32).parse().unwrap();
    match node.store.try_get(&id) {
        Some(Err(f)) => assert!(matches!(*f, Failure::NotFound(_)), "{f}"),
        other => panic!("expected not found, got {other:?}"),
    }
}

#[test]
fn library_component_runs_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    runtime().block_on(async {
        let program = node.load("library.wasm", &std::fs::read(guest!(LIBRARY)).unwrap()).await.unwrap();
        assert!(!program.is_command());
        let job = node.job(program, Output::stdio());
        let id = node.remote(&job, "double".into(), vec![TaskArg::Value(encode(&21i64))], TaskOptions::default());
        let value = node.store.get(&id, None).await.unwrap();
        assert_eq!(rmp_serde::from_slice::<i64>(&value.to_vec().unwrap()).unwrap(), 42);
    });
}

#[test]
fn owned_actors_end_with_their_job_detached_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = prism_cli::open_node(Config::new(dir.path())).unwrap();
    runtime().block_on(async {
        let program = node.load("actors.wasm", &std::fs::read(guest!(ACTORS)).unwrap()).await.unwrap();
        let classes: Vec<_> = program.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(classes, ["Broken", "Flaky", "Log", "Supervisor"]);
        let job = node.job(program, Output::new(|_, _| {}));
        let exit = node.run_driver(&job, &["lifetime".to_string()]).await.unwrap();
        assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}");
        let err = node.actor_by_name("owned").unwrap_err();
        assert_eq!(err.to_string(), "not found: no live actor named `owned`");
        let kept = node.actor_by_name("kept").expect("a detached actor outlives its job");
        let items = node.call_actor(node.next_caller(), kept, "items".into(), vec![]);
        let value = node.store.get(&items, None).await.unwrap();
        assert_eq!(rmp_serde::from_slice::<Vec<i64>>(&value.to_vec().unwrap()).unwrap(), [2]);
        node.kill_actor(kept, true).unwrap();
        assert!(node.actor_by_name("kept").is_err());
    });
}
