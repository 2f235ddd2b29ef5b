//! `prism`: run Ray-style programs compiled to WebAssembly components.

mod commands;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the node allocates and frees small buffers on every request and
/// task from every worker thread, which glibc's malloc serves slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match commands::Prism::parse().execute() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
