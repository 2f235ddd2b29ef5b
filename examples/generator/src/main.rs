//! The seed's "GOOD" pattern: a task that yields large values one at a time
//! instead of returning them all in one list. Each value is its own object,
//! readable (mapped, not copied) as soon as it is yielded, so only about one
//! value is in memory at a time.
//!
//! `prism run generator.wasm -- [NUM_RETURNS]` (default 3).

use prism::Bytes;

/// 100 MB of random int8s, as the seed's
/// `np.random.randint(np.iinfo(np.int8).max, size=(100_000_000, 1))`.
fn random_values(seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let values: Vec<u8> = (0..100_000_000)
        .map(|_| {
            // xorshift64: deterministic, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % i8::MAX as u64) as u8
        })
        .collect();
    Bytes::from(values)
}

#[prism::remote]
fn large_values_generator(num_returns: u32) -> impl Iterator<Item = Bytes> {
    (0..num_returns).map(|i| {
        let value = random_values(u64::from(i));
        println!("yielding return value {i}");
        value
    })
}

fn main() {
    let num_returns = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(3);
    for (i, r) in large_values_generator::remote(num_returns).enumerate() {
        let value = prism::get_bytes(&r).unwrap();
        let max = value.iter().max().copied().unwrap_or(0);
        println!("value {i}: {} bytes, mapped: {}, max {max}", value.len(), value.is_mapped());
    }
}
