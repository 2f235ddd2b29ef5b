use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Subcommand;
use hyper::Method;

use super::client::{ServerOptions, ok_body, runtime};

/// Keep bytes on the server as an object, or fetch one.
#[derive(Subcommand)]
pub enum Object {
    /// Upload a file as a byte-string object; prints its ref
    Put {
        /// The file
        file: PathBuf,
        #[command(flatten)]
        server: ServerOptions,
    },
    /// Download an object: a byte string's bytes, any other value as JSON
    Get {
        /// Its ref (64 hex digits)
        object: String,
        /// Write it here instead of stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        server: ServerOptions,
    },
}

impl Object {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Object::Put { file, server } => {
                let bytes = std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
                let endpoint = server.endpoint()?;
                let answer = runtime()?.block_on(endpoint.json(Method::POST, "/v1/objects", bytes.into(), false))?;
                println!("{}", answer["ref"].as_str().unwrap_or_default());
            }
            Object::Get { object, output, server } => {
                let endpoint = server.endpoint()?;
                let path = format!("/v1/objects/{object}");
                let bytes = runtime()?.block_on(async {
                    let response = endpoint.send(Method::GET, &path, Bytes::new(), false).await?;
                    ok_body(response).await
                })?;
                match output {
                    Some(file) => {
                        std::fs::write(&file, &bytes).with_context(|| format!("cannot write `{}`", file.display()))?
                    }
                    None => std::io::stdout().lock().write_all(&bytes)?,
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
