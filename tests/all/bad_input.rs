//! Bad input gets a precise message and a non-zero exit, never a crash.

use crate::{guest, prism};

fn run_fails(file: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["run", file, "--"];
    argv.extend_from_slice(args);
    let run = prism(dir.path(), &argv);
    assert!(!run.success, "expected failure, got:\n{}", run.stdout);
    assert!(!run.stderr.contains("panicked at host"), "the host panicked:\n{}", run.stderr);
    run.stderr
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn missing_file() {
    let err = run_fails("/nonexistent/app.wasm", &[]);
    assert!(err.contains("error: cannot read `/nonexistent/app.wasm`"), "{err}");
}

#[test]
fn not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "notes.wasm", b"hello, world");
    let err = run_fails(&file, &[]);
    assert!(err.contains("`notes.wasm` is not a WebAssembly file"), "{err}");
}

#[test]
fn core_module_instead_of_component() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "core.wasm", b"\0asm\x01\0\0\0");
    let err = run_fails(&file, &[]);
    assert!(err.contains("`core.wasm` is a core WebAssembly module, not a component"), "{err}");
}

#[test]
fn truncated_component() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(guest!(SQUARE)).unwrap();
    let file = write(&dir, "cut.wasm", &bytes[..bytes.len() / 2]);
    let err = run_fails(&file, &[]);
    assert!(err.contains("`cut.wasm` is not a valid component"), "{err}");
}

#[test]
fn component_of_another_world() {
    let err = run_fails(guest!(PLAIN_COMMAND), &[]);
    assert!(err.contains("does not export `prism:core/worker@0.3.0`: build it with a prism SDK"), "{err}");
}

#[test]
fn driver_trap_is_an_error_with_the_guest_message() {
    let err = run_fails(guest!(SEMANTICS), &["panic"]);
    assert!(err.contains("error: driver `semantics.wasm` trapped: wasm trap"), "{err}");
    assert!(err.contains("the driver gives up"), "{err}");
}

#[test]
fn bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["run", "--workers", "0", guest!(SQUARE)]);
    assert!(!run.success);
    assert!(run.stderr.contains("--workers"), "{}", run.stderr);
    let run = prism(dir.path(), &["run", "--cpu-deadline", "-1", guest!(SQUARE)]);
    assert!(!run.success);
}

#[test]
fn help_describes_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let help = prism(dir.path(), &["--help"]).stdout;
    assert!(help.contains("run") && help.contains("bench"), "{help}");
    let help = prism(dir.path(), &["run", "--help"]).stdout;
    for flag in ["--data-dir", "--workers", "--memory-limit", "--cpu-deadline"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn component_without_main_is_not_a_driver() {
    let err = run_fails(guest!(LIBRARY), &[]);
    assert!(err.contains("`library.wasm` cannot run as a driver: it does not export `wasi:cli/run`"), "{err}");
}
