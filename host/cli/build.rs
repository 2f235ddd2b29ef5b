//! Builds the one guest the `prism` binary embeds, `prism bench`'s
//! (tests/programs/src/bin/bench.rs); `PRISM_BENCH_GUEST` is its path. The
//! tests build the others (tests/guests).

fn main() {
    let root = prism_guest_build::workspace_root(2);
    let selection = ["-p", "prism-test-programs", "--bin", "bench"].map(String::from);
    let out = prism_guest_build::build(&root, &selection);
    println!("cargo:rustc-env=PRISM_BENCH_GUEST={}", out.join("bench.wasm").display());
}
