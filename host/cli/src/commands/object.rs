use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Subcommand;
use hyper::Method;

use super::client::{ServerOptions, Upload, copy_body, ok, runtime};

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
                let endpoint = server.endpoint()?;
                let answer =
                    runtime()?.block_on(endpoint.json(Method::POST, "/v1/objects", Upload::File(file), false))?;
                println!("{}", answer["ref"].as_str().unwrap_or_default());
            }
            Object::Get { object, output, server } => {
                let endpoint = server.endpoint()?;
                let path = format!("/v1/objects/{object}");
                runtime()?.block_on(async {
                    let response = endpoint.send(Method::GET, &path, Bytes::new(), false).await?;
                    // The file is made only once the server answers with the object.
                    let body = ok(response).await?;
                    match output {
                        Some(file) => {
                            let mut out = std::fs::File::create(&file)
                                .with_context(|| format!("cannot write `{}`", file.display()))?;
                            copy_body(body, &mut out).await
                        }
                        None => copy_body(body, &mut std::io::stdout().lock()).await,
                    }
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
