use std::process::ExitCode;

use anyhow::Context as _;
use hyper::Method;

use super::client::{ServerOptions, encode, print_json, runtime};

/// Call a deployed module's function and print its result as JSON.
///
/// Each argument is a JSON value (`3`, `'"text"'`, `'[1,2]'`); an object
/// ref is `'{"$ref":"<64 hex>"}'`.
#[derive(clap::Args)]
pub struct Invoke {
    /// The module's id or name
    module: String,

    /// The function
    function: String,

    /// Its arguments, one JSON value each
    args: Vec<String>,

    /// Print the result's ref at once instead of waiting for the value
    #[arg(long = "ref")]
    as_ref: bool,

    #[command(flatten)]
    server: ServerOptions,
}

impl Invoke {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let args: Vec<serde_json::Value> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| serde_json::from_str(a).with_context(|| format!("argument {i} (`{a}`) is not JSON")))
            .collect::<Result<_, _>>()?;
        let mut path = format!("/v1/modules/{}/functions/{}", encode(&self.module), encode(&self.function));
        if self.as_ref {
            path.push_str("?result=ref");
        }
        let body = serde_json::to_vec(&args)?;
        let endpoint = self.server.endpoint()?;
        let answer = runtime()?.block_on(endpoint.json(Method::POST, &path, body, true))?;
        print_json(if self.as_ref { &answer["ref"] } else { &answer["result"] });
        Ok(ExitCode::SUCCESS)
    }
}
