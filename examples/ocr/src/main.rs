//! The seed's OCR backend, in small: a document's pages are recognized in
//! parallel (CPU-bound per page) and the text is assembled in page order.
//!
//! Pages are bitmaps of 8×8 glyphs with noise; recognizing a glyph means
//! finding the closest of the 95 printable ones, pixel by pixel.

use serde::{Deserialize, Serialize};

const GLYPH: usize = 8;
const COLUMNS: usize = 64;
const LINES: usize = 48;
const PAGES: u32 = 12;

/// A scanned page: one byte per pixel, 0 or 1.
#[derive(Serialize, Deserialize)]
struct Page {
    number: u32,
    pixels: prism::Bytes,
}

/// A deterministic xorshift generator, so every run scans the same document.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The 8×8 bitmap of a printable character (a made-up font).
fn glyph(c: u8) -> [u8; GLYPH * GLYPH] {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(c).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let bits = if c == b' ' { 0 } else { rng.next() };
    std::array::from_fn(|i| ((bits >> i) & 1) as u8)
}

/// The text printed on page `n`.
fn page_text(n: u32) -> String {
    const WORDS: &[&str] = &["ray", "prism", "object", "task", "actor", "wasm", "page", "layout", "table", "title"];
    let mut rng = Rng(u64::from(n) + 1);
    let mut text = String::new();
    while text.len() < COLUMNS * LINES {
        text.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    text.truncate(COLUMNS * LINES);
    text
}

/// Prints `text` on a page, with a little noise, as a scanner would see it.
fn scan(number: u32, text: &str) -> Page {
    let width = COLUMNS * GLYPH;
    let mut pixels = vec![0u8; width * LINES * GLYPH];
    let mut noise = Rng(u64::from(number) * 7919 + 17);
    for (i, c) in text.bytes().enumerate() {
        let (line, col) = (i / COLUMNS, i % COLUMNS);
        for (p, ink) in glyph(c).iter().enumerate() {
            let (y, x) = (line * GLYPH + p / GLYPH, col * GLYPH + p % GLYPH);
            let flip = noise.next().is_multiple_of(29);
            pixels[y * width + x] = ink ^ u8::from(flip);
        }
    }
    Page { number, pixels: prism::Bytes::from(pixels) }
}

/// Recognizes every glyph of a page: the CPU-heavy step that runs in parallel.
#[prism::remote]
fn recognize(page: Page) -> String {
    let font: Vec<(u8, [u8; GLYPH * GLYPH])> = (32u8..127).map(|c| (c, glyph(c))).collect();
    let width = COLUMNS * GLYPH;
    let mut text = String::with_capacity(COLUMNS * LINES);
    for i in 0..COLUMNS * LINES {
        let (line, col) = (i / COLUMNS, i % COLUMNS);
        let block: [u8; GLYPH * GLYPH] =
            std::array::from_fn(|p| page.pixels[(line * GLYPH + p / GLYPH) * width + col * GLYPH + p % GLYPH]);
        let best = font
            .iter()
            .min_by_key(|(_, g)| g.iter().zip(&block).filter(|(a, b)| a != b).count())
            .map_or(b'?', |(c, _)| *c);
        text.push(best as char);
    }
    eprintln!("recognized page {}", page.number);
    text
}

fn main() {
    let originals: Vec<String> = (0..PAGES).map(page_text).collect();
    let results: Vec<_> =
        originals.iter().enumerate().map(|(n, text)| recognize::remote(scan(n as u32, text))).collect();
    let pages = prism::get_all(&results).unwrap();
    let mut exact = 0;
    for (n, (text, original)) in pages.iter().zip(&originals).enumerate() {
        exact += usize::from(text == original);
        let words: Vec<&str> = text.split_whitespace().collect();
        println!("page {n}: {} words, begins \"{}\"", words.len(), words[..4].join(" "));
    }
    println!("{exact} of {PAGES} pages recognized exactly");
}
