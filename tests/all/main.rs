//! prism's integration tests: one binary, one module per topic.
//!
//! Guest components are built from source by tests/guests; `guest!(NAME)`
//! is the path of `name.wasm`. The CLI is the real `prism` binary, run on a
//! fresh data directory per test.

mod actors;
mod bad_input;
mod boundary;
mod calls;
mod cancel;
mod cluster;
mod examples;
mod guests;
mod host_api;
mod lifetime;
mod mapping;
mod persistence;
mod python;
mod semantics;
mod service;
mod soak;

use std::path::Path;
use std::process::{Command, Output};

/// Path of a guest component built by tests/guests.
#[macro_export]
macro_rules! guest {
    ($name:ident) => {
        prism_test_guests::$name
    };
}

/// What a `prism` invocation printed, and how it ended.
pub struct Run {
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// Whether it exited with 0.
    pub success: bool,
    /// Its exit code.
    pub code: Option<i32>,
}

/// Runs `prism ARGS…` with its data in `data_dir`.
pub fn prism(data_dir: &Path, args: &[&str]) -> Run {
    prism_with_env(data_dir, args, &[])
}

/// [`prism`] with extra environment variables.
pub fn prism_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(args)
        .env("PRISM_DATA_DIR", data_dir)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("cannot start the prism binary");
    Run {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        success: status.success(),
        code: status.code(),
    }
}

/// `prism run COMPONENT -- ARGS…` on a fresh data directory; panics (with
/// the output) if it fails.
pub fn run_ok(component: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["run", component, "--"];
    argv.extend_from_slice(args);
    let run = prism(dir.path(), &argv);
    assert!(run.success, "prism run {component} {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}
