//! Python programs as components: componentize-py wraps a script with the
//! Python SDK (docs/python.md). Builds are cached by the hash of what goes
//! in, so a second `prism run app.py` starts at once.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use prism_exec::config;

/// The app module componentize-py wraps: it holds the script's source and
/// hands it to the SDK at build time.
const APP_MODULE: &str = "_prism_app";
/// The world the SDK ships (`guest-sdk/python/prism/wit/world.wit`).
const WORLD: &str = "prism:python/guest@0.3.0";
/// `bytes` would shadow Python's builtin.
const BYTES_NAME: &str = "prism:core/bytes@0.3.0=prism_bytes";

/// The venv holding componentize-py and the SDK: `$PRISM_PYTHON`, else the
/// one the README's set-up makes.
fn toolchain() -> PathBuf {
    match std::env::var_os("PRISM_PYTHON").filter(|p| !p.is_empty()) {
        Some(venv) => PathBuf::from(venv),
        None => config::default_data_dir().join("python"),
    }
}

/// Where built components are kept.
fn cache_dir() -> PathBuf {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME").map_or_else(|| PathBuf::from(".cache"), |h| PathBuf::from(h).join(".cache")),
    };
    base.join("prism").join("python")
}

/// The venv's componentize-py and site-packages, and the directory the
/// SDK (the `prism` package) is in: the venv's, or `$PRISM_PYTHON_SDK` (for
/// working on the SDK: `guest-sdk/python`).
struct Toolchain {
    componentize: PathBuf,
    site_packages: PathBuf,
    sdk: PathBuf,
}

impl Toolchain {
    fn find() -> anyhow::Result<Toolchain> {
        let venv = toolchain();
        let componentize = venv.join("bin").join("componentize-py");
        let site_packages = std::fs::read_dir(venv.join("lib"))
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("site-packages"))
            .find(|dir| dir.join("prism").join("wit").join("world.wit").is_file());
        match site_packages {
            Some(site_packages) if componentize.is_file() => {
                let sdk = std::env::var_os("PRISM_PYTHON_SDK")
                    .filter(|p| !p.is_empty())
                    .map_or_else(|| site_packages.clone(), PathBuf::from);
                Ok(Toolchain { componentize, site_packages, sdk })
            }
            _ => bail!(
                "cannot build Python: no venv with componentize-py and the prism SDK at `{}`; run \
                 `bash guest-sdk/python/setup.sh` in prism's repository, or set PRISM_PYTHON to such a venv",
                venv.display()
            ),
        }
    }

    /// What a build depends on besides the script's directory: the SDK's
    /// files, componentize-py and the user's venv.
    fn hash_into(&self, hasher: &mut blake3::Hasher) -> anyhow::Result<()> {
        hash_tree(hasher, &self.sdk.join("prism"))?;
        hash_stamp(hasher, &self.componentize);
        if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
            hasher.update(venv.as_encoded_bytes());
            for lib in std::fs::read_dir(Path::new(&venv).join("lib")).into_iter().flatten().flatten() {
                hash_stamp(hasher, &lib.path().join("site-packages"));
            }
        }
        Ok(())
    }
}

/// A file's size and modification time, not its bytes (it is large, or a
/// directory whose time changes when packages come and go).
fn hash_stamp(hasher: &mut blake3::Hasher, path: &Path) {
    hasher.update(path.as_os_str().as_encoded_bytes());
    if let Ok(meta) = std::fs::metadata(path) {
        hasher.update(&meta.len().to_le_bytes());
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        hasher.update(&modified.unwrap_or_default().as_nanos().to_le_bytes());
    }
}

/// The names and bytes of the `.py` and `.wit` files under `dir`, leaving
/// out hidden directories, caches and venvs.
fn hash_tree(hasher: &mut blake3::Hasher, dir: &Path) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') && name != "__pycache__" && !path.join("pyvenv.cfg").exists() {
                hash_tree(hasher, &path)?;
            }
        } else if name.ends_with(".py") || name.ends_with(".wit") {
            hasher.update(path.as_os_str().as_encoded_bytes());
            hasher.update(&std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?);
        }
    }
    Ok(())
}

/// The component of the Python script `script`: built, or taken from the
/// cache if nothing it is built from changed. Returns its path.
pub fn component(script: &Path) -> anyhow::Result<PathBuf> {
    let toolchain = Toolchain::find()?;
    let script = std::fs::canonicalize(script).with_context(|| format!("cannot read `{}`", script.display()))?;
    let dir = script.parent().context("a script is in a directory")?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(script.as_os_str().as_encoded_bytes());
    hash_tree(&mut hasher, dir)?;
    toolchain.hash_into(&mut hasher)?;
    let hash = hasher.finalize().to_hex();
    let cache = cache_dir();
    let built = cache.join(format!("{hash}.wasm"));
    if built.is_file() {
        // Used now: pruning keeps the most recently used.
        let _ = std::fs::File::options()
            .write(true)
            .open(&built)
            .and_then(|file| file.set_modified(std::time::SystemTime::now()));
    } else {
        // A directory of this process's own: builds of one script may race.
        build(&toolchain, &script, &cache.join(format!("{hash}.{}", std::process::id())), &built)?;
        prune(&cache);
    }
    Ok(built)
}

/// Built components kept at most: each is about 19 MB, and every edit of a
/// script makes a new one.
const KEPT: usize = 32;

/// Deletes all but the [`KEPT`] most recently used built components.
fn prune(cache: &Path) {
    let mut built: Vec<_> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "wasm"))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    built.sort_unstable_by_key(|(used, _)| std::cmp::Reverse(*used));
    for (_, path) in built.into_iter().skip(KEPT) {
        let _ = std::fs::remove_file(path);
    }
}

/// The component of a script prism carries (`source`, named `name`): kept
/// in a directory of its own under the cache, then built as any script.
pub fn component_of(name: &str, source: &str) -> anyhow::Result<PathBuf> {
    let dir = cache_dir().join("scripts").join(blake3::hash(source.as_bytes()).to_hex().as_str());
    let script = dir.join(name);
    if !script.is_file() {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        std::fs::write(&script, source).with_context(|| format!("cannot write `{}`", script.display()))?;
    }
    component(&script)
}

/// Builds `script` into `output` (through `work`, a directory of its own).
fn build(toolchain: &Toolchain, script: &Path, work: &Path, output: &Path) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(script).with_context(|| format!("cannot read `{}`", script.display()))?;
    let name = script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::fs::create_dir_all(work).with_context(|| format!("cannot create `{}`", work.display()))?;
    // A JSON string is a Python string literal.
    let app = format!(
        "from prism._script import Run, Worker, load\n\nload({}, {})\n",
        serde_json::to_string(&source)?,
        serde_json::to_string(&name)?
    );
    std::fs::write(work.join(format!("{APP_MODULE}.py")), app)?;
    let partial = work.join("component.wasm");
    let dir = script.parent().context("a script is in a directory")?;
    let out = Command::new(&toolchain.componentize)
        .arg("-d")
        .arg(toolchain.sdk.join("prism").join("wit"))
        .args(["-w", WORLD, "--import-interface-name", BYTES_NAME, "componentize", APP_MODULE, "-p"])
        .arg(work)
        .arg("-p")
        .arg(dir)
        .arg("-p")
        .arg(&toolchain.sdk)
        .arg("-p")
        .arg(&toolchain.site_packages)
        .arg("-o")
        .arg(&partial)
        .output()
        .with_context(|| format!("cannot start `{}`", toolchain.componentize.display()))?;
    if !out.status.success() {
        bail!("cannot build `{name}`: componentize-py failed:\n{}", String::from_utf8_lossy(&out.stderr).trim_end());
    }
    std::fs::rename(&partial, output).with_context(|| format!("cannot write `{}`", output.display()))?;
    let _ = std::fs::remove_dir_all(work);
    Ok(())
}

/// Whether `path` names a Python script.
pub fn is_script(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "py")
}

/// The component file `path` names: itself, or a Python script's, built.
pub fn component_file(path: &Path) -> anyhow::Result<PathBuf> {
    if is_script(path) { component(path) } else { Ok(path.to_path_buf()) }
}
