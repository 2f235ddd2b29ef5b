//! Every guest program is run by some test: one nothing runs is dead code.

use crate::{guest, prism};

#[test]
fn every_guest_is_run_by_a_test() {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/all");
    let sources: String =
        std::fs::read_dir(&here).unwrap().map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap()).collect();
    for name in prism_test_guests::ALL {
        assert!(sources.contains(&format!("guest!({name})")), "no test runs the guest `{name}`");
    }
}

#[test]
fn bench_prints_one_line_per_benchmark_by_rays_names() {
    // Only the output's shape: benchmarks report numbers, tests don't time.
    let _built = guest!(BENCH);
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["bench", "--seconds", "0.05", "single_client_get_calls", "tasks_sync"]);
    assert!(run.success, "{}", run.stderr);
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(lines[0][0], "single_client_get_calls");
    assert_eq!(lines[1][0], "single_client_tasks_sync");
    for line in lines {
        assert_eq!(line.len(), 3, "`name value unit`: {line:?}");
        assert!(line[1].parse::<f64>().unwrap() > 0.0);
        assert_eq!(line[2], "ops/s");
    }
}

#[test]
fn a_generator_of_ten_100_mb_values_keeps_about_one_in_memory() {
    // A memory bound, not a timing: the peak is one value being produced
    // plus one being read (both about 100 MB), never all ten.
    let dir = tempfile::tempdir().unwrap();
    let run = prism(dir.path(), &["bench", "--memory", "generator_10x100mb"]);
    assert!(run.success, "{}", run.stderr);
    let pss: u64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak_pss ")?.strip_suffix(" MiB")?.parse().ok())
        .unwrap_or_else(|| panic!("no peak_pss in {}", run.stdout));
    assert!(pss < 500, "peak PSS {pss} MiB for ten 100 MB values");
}
