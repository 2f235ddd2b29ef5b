//! Builds every guest program for `wasm32-wasip2` and writes, for each
//! `<name>.wasm`, a constant `<NAME>` (`-` becomes `_`) with its path, and
//! `ALL`, their names.

use std::fmt::Write as _;

fn main() {
    let root = prism_guest_build::workspace_root(2);
    let mut selection = vec!["-p".to_string(), "prism-test-programs".to_string()];
    for package in prism_guest_build::packages_in(&root.join("examples")) {
        selection.extend(["-p".to_string(), package]);
    }
    let out = prism_guest_build::build(&root, &selection);
    let mut guests: Vec<(String, String)> = std::fs::read_dir(&out)
        .expect("guest output directory")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().to_uppercase().replace('-', "_");
            (name, path.display().to_string())
        })
        .collect();
    guests.sort();
    let mut code = String::new();
    for (name, path) in &guests {
        writeln!(code, "/// `{path}`.\npub const {name}: &str = {path:?};").unwrap();
    }
    let names: Vec<_> = guests.iter().map(|(name, _)| format!("{name:?}")).collect();
    writeln!(code, "/// Every guest's name.\npub const ALL: &[&str] = &[{}];", names.join(", ")).unwrap();
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(dest, code).unwrap();
}
