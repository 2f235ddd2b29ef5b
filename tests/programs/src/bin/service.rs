//! Functions and a driver for tests/all/service.rs: trivial work, work that
//! takes a while, and guests that run into every limit.

use std::time::{Duration, Instant};

#[prism::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Busy for `ms` milliseconds of cpu, then returns `ms`.
#[prism::remote]
fn spin(ms: u64) -> u64 {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut n = 0u64;
    while Instant::now() < end {
        n = std::hint::black_box(n.wrapping_add(1));
    }
    ms
}

/// Never returns: ends at its cpu deadline.
#[prism::remote]
fn forever() -> u64 {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Grows memory without end: ends at its memory limit.
#[prism::remote]
fn hog() -> usize {
    let mut keep = Vec::new();
    loop {
        keep.push(vec![1u8; 16 << 20]);
        std::hint::black_box(&keep);
    }
}

#[prism::remote]
fn fail(message: String) -> Result<i64, String> {
    Err(message)
}

/// The bytes of a byte-string object, summed.
#[prism::remote]
fn sum_bytes(data: prism::View) -> u64 {
    data.iter().map(|&b| u64::from(b)).sum()
}

#[prism::actor]
struct Tally {
    total: i64,
}

#[prism::actor]
impl Tally {
    fn new(start: i64) -> Self {
        Tally { total: start }
    }

    fn add(&mut self, n: i64) -> i64 {
        self.total += n;
        self.total
    }
}

/// `main`: prints its arguments and a task's result; with `forever`, then
/// prints a line every 50 ms until stopped; with `flood`, runs 40 calls of
/// `spin(300)` at once; with `chatty`, prints 2 MiB; with `busy`, loops.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args {args:?}");
    println!("add {}", prism::get(&add::remote(2, 3)).unwrap());
    if args.iter().any(|a| a == "flood") {
        let calls: Vec<_> = (0..40).map(|_| spin::remote(300)).collect();
        println!("flood {}", prism::get_all(&calls).unwrap().len());
    }
    if args.iter().any(|a| a == "chatty") {
        let line = "x".repeat(1023);
        for _ in 0..2048 {
            println!("{line}");
        }
    }
    if args.iter().any(|a| a == "busy") {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if args.iter().any(|a| a == "forever") {
        for i in 0.. {
            println!("tick {i}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
