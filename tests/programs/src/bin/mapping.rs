//! Large objects mapped into guest memory, one case per argument:
//! `prism run mapping.wasm -- CASE`. tests/all/mapping.rs asserts the output.

use prism::wit::prism::core::{bytes, objects, types};
use prism::{Bytes, Global, ObjectRef, View};

/// 8 MiB whose every 8-byte word is its index: easy to check anywhere.
fn pattern() -> Vec<u8> {
    (0..1u64 << 20).flat_map(u64::to_le_bytes).collect()
}

fn matches_pattern(data: &[u8]) -> bool {
    data.len() == 8 << 20 && data.chunks_exact(8).enumerate().all(|(i, w)| w == (i as u64).to_le_bytes())
}

/// A task argument that is a ref to a large byte string arrives mapped.
#[prism::remote]
fn checksum(data: View) -> (bool, u64) {
    (data.is_mapped(), data.cast::<u64>().unwrap().iter().sum())
}

/// Writes into its mapping (copy-on-write), then reads the object again.
#[prism::remote]
fn scribble(data: View, r: ObjectRef<Bytes>) -> (bool, bool) {
    let mut data = data;
    data[..8].copy_from_slice(&[0xff; 8]);
    let wrote = data[..8] == [0xff; 8];
    (wrote, matches_pattern(&prism::get_bytes(&r).unwrap()))
}

/// Where `leak_and_trap` left its mapping.
static LEAKED: Global<(u32, u32)> = Global::new("leaked");

/// Maps `r`, leaves the mapping in place and traps: the instance is dropped
/// with the object still mapped.
#[prism::remote]
fn leak_and_trap(r: ObjectRef<Bytes>) -> u32 {
    let view = prism::get_bytes(&r).unwrap();
    LEAKED.set(&(view.as_ptr() as u32, view.len() as u32)).unwrap();
    std::mem::forget(view);
    panic!("trap with the object mapped");
}

/// Reads this instance's memory at `[at, at + len)` without writing to it.
#[prism::remote]
fn all_zero_at(at: u32, len: u32) -> bool {
    // Grow memory over the range without initializing it.
    let mut grow: Vec<u8> = Vec::with_capacity((at + len) as usize);
    let base = grow.as_mut_ptr();
    let zero = (at..at + len).step_by(4096).all(|a| {
        // SAFETY: `a` is inside linear memory (grown above); reading
        // uninitialized wasm memory is reading whatever the host put there.
        unsafe { std::ptr::read_volatile(a as usize as *const u8) == 0 }
    });
    std::hint::black_box(base);
    zero
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    match case.as_str() {
        "get" => {
            let r = prism::put_bytes(&pattern()).unwrap();
            let view = prism::get_bytes(&r).unwrap();
            println!("mapped: {}, aligned: {}", view.is_mapped(), (view.as_ptr() as usize).is_multiple_of(64 << 10));
            println!("pattern: {}", matches_pattern(&view));
            println!("as u64: {:?}", &view.cast::<u64>().unwrap()[..4]);
            let small = prism::put_bytes(b"small").unwrap();
            let small = prism::get_bytes(&small).unwrap();
            println!("small mapped: {}, {:?}", small.is_mapped(), std::str::from_utf8(&small).unwrap());
        }
        "typed" => {
            // A large value that is not a byte string: mapped, then decoded.
            let values: Vec<u64> = (0..200_000).collect();
            let r = prism::put(&values).unwrap();
            let got: Vec<u64> = prism::get(&r).unwrap();
            println!("decoded: {}", got == values);
            let bytes = prism::put(&Bytes::from(pattern())).unwrap();
            println!("put of bytes = put_bytes: {}", bytes == prism::put_bytes(&pattern()).unwrap());
            let got: Bytes = prism::get(&bytes).unwrap();
            println!("as Bytes: {}", matches_pattern(&got));
        }
        "args" => {
            let r = prism::put_bytes(&pattern()).unwrap();
            let expected: u64 = (0..1u64 << 20).sum();
            // Two tasks read the one object at the same time.
            let refs = [checksum::remote(&r), checksum::remote(&r)];
            for (mapped, sum) in prism::get_all(&refs).unwrap() {
                println!("mapped: {mapped}, sum right: {}", sum == expected);
            }
        }
        "copy-on-write" => {
            let r = prism::put_bytes(&pattern()).unwrap();
            let (wrote, unchanged) = prism::get(&scribble::remote(&r, r.clone())).unwrap();
            println!("guest wrote: {wrote}, object unchanged: {unchanged}");
            let mut mine = prism::get_bytes(&r).unwrap();
            mine[100] = 1;
            println!("driver's copy-on-write: {}", matches_pattern(&prism::get_bytes(&r).unwrap()));
            // `read` copies the whole encoding from the object's file.
            let copy = bytes::read(prism::wit::words(r.id())).unwrap();
            println!("verified: {}", prism::put_bytes(&copy[5..]).unwrap() == r && matches_pattern(&copy[5..]));
        }
        "host-writes" => {
            // Free a mapping without unmapping it (as a buggy guest might),
            // then have the host lower an 8 MiB list into the same memory.
            // The pattern stays allocated: freed, it would leave a hole below
            // the buffer where the copy could land instead.
            let data = pattern();
            let r = prism::put_bytes(&data).unwrap();
            let id = prism::wit::words(r.id());
            let payload = objects::get(&[id], None).unwrap().remove(0);
            let types::Payload::Large(large) = payload else { panic!("not large") };
            // A page more than the body needs, so the freed buffer can take
            // the copy `read` makes next (the whole encoding: 5 bytes more).
            let size = (large.len as usize).next_multiple_of(65536) + 65536;
            let layout = std::alloc::Layout::from_size_align(size, 65536).unwrap();
            // SAFETY: a non-zero size.
            let buffer = unsafe { std::alloc::alloc(layout) };
            bytes::map_object(id, buffer as u32, layout.size() as u32).unwrap();
            // SAFETY: allocated above.
            unsafe { std::alloc::dealloc(buffer, layout) };
            let copy = bytes::read(id).unwrap();
            let (start, end) = (copy.as_ptr() as usize, copy.as_ptr() as usize + copy.len());
            let overlap = end.min(buffer as usize + layout.size()).saturating_sub(start.max(buffer as usize));
            println!("host wrote into the mapped pages: {}, value right: {}", overlap > 0, matches_pattern(&copy[5..]));
            drop(data);
        }
        "slot-reuse" => {
            // Run with one instance slot for tasks: the second task gets the
            // slot the first one trapped in.
            let r = prism::put_bytes(&vec![0xab; 8 << 20]).unwrap();
            println!("{}", prism::get(&leak_and_trap::remote(r)).unwrap_err());
            let (at, len) = LEAKED.get().unwrap();
            println!("next instance reads zeros there: {}", prism::get(&all_zero_at::remote(at, len)).unwrap());
        }
        "bad-window" => {
            let r = prism::wit::words(prism::put_bytes(&pattern()).unwrap().id());
            let len = 8 << 20;
            // A buffer at the bottom of memory (over the static data), a
            // misaligned one, one past the end of memory, and a small object.
            println!("{}", prism::Error::from(bytes::map_object(r, 0, len).unwrap_err()));
            let heap = vec![0u8; 16 << 20];
            let misaligned = (heap.as_ptr() as usize).next_multiple_of(65536) + 12345;
            println!("{}", prism::Error::from(bytes::map_object(r, misaligned as u32, len).unwrap_err()));
            println!("{}", prism::Error::from(bytes::map_object(r, u32::MAX - 65535, len).unwrap_err()));
            let small = prism::wit::words(prism::put_bytes(b"tiny").unwrap().id());
            println!("{}", prism::Error::from(bytes::map_object(small, misaligned as u32, len).unwrap_err()));
            println!("{}", prism::Error::from(bytes::unmap(misaligned as u32).unwrap_err()));
        }
        "mapping-cap" => {
            // Regression: the live mappings of an instance are capped, with
            // an error naming the limit; dropping a view gives one back.
            let r = prism::put_bytes(&vec![7u8; 128 << 10]).unwrap();
            let mut views = Vec::new();
            let error = loop {
                match prism::get_bytes(&r) {
                    Ok(view) if view.is_mapped() => views.push(view),
                    Ok(_) => panic!("not mapped"),
                    Err(e) => break e,
                }
            };
            println!("mapped: {}", views.len());
            println!("{error}");
            views.pop();
            println!("after dropping one: {}", prism::get_bytes(&r).unwrap().is_mapped());
        }
        other => panic!("unknown case `{other}`"),
    }
}
