use std::path::PathBuf;
use std::process::ExitCode;

use hyper::Method;

use super::client::{ServerOptions, Upload, encode, print_json, runtime};
use super::python;

/// Upload a component to the server; prints its id, functions and classes.
///
/// The server checks it is a prism component before keeping it. Invoke its
/// functions with `prism invoke <id or name> <function> [args]`.
#[derive(clap::Args)]
pub struct Deploy {
    /// The component (.wasm built for wasm32-wasip2 with a prism SDK), or a
    /// Python script (.py), built first (and cached)
    component: PathBuf,

    /// Name to find it by [default: its file name without .wasm or .py]
    #[arg(long)]
    name: Option<String>,

    #[command(flatten)]
    server: ServerOptions,
}

impl Deploy {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let name = self.name.clone().unwrap_or_else(|| {
            self.component.file_stem().map_or_else(|| "module".into(), |s| s.to_string_lossy().into_owned())
        });
        let file = python::component_file(&self.component)?;
        let endpoint = self.server.endpoint()?;
        let path = format!("/v1/modules?name={}", encode(&name));
        let info = runtime()?.block_on(endpoint.json(Method::POST, &path, Upload::File(file), false))?;
        print_json(&info);
        Ok(ExitCode::SUCCESS)
    }
}
