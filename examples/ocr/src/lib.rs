//! The seed's OCR backend, in small: pages are bitmaps of 8×8 glyphs with
//! noise; recognizing a glyph means finding the closest of the 95 printable
//! ones, pixel by pixel. Shared by the `ocr` (tasks) and `ocr-actors`
//! (a pool of actors) examples.

use serde::{Deserialize, Serialize};

const GLYPH: usize = 8;
const COLUMNS: usize = 64;
const LINES: usize = 48;

/// A scanned page: one byte per pixel, 0 or 1.
#[derive(Serialize, Deserialize)]
pub struct Page {
    /// Its page number.
    pub number: u32,
    /// Its pixels, row by row.
    pub pixels: prism::Bytes,
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

/// The recognizer's model: every printable glyph.
pub type Font = Vec<(u8, [u8; GLYPH * GLYPH])>;

/// Loads the model.
pub fn font() -> Font {
    (32u8..127).map(|c| (c, glyph(c))).collect()
}

/// The text printed on page `n`.
pub fn page_text(n: u32) -> String {
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
pub fn scan(number: u32, text: &str) -> Page {
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

/// Recognizes every glyph of a page with `font`: the CPU-heavy step.
pub fn read(font: &Font, page: &Page) -> String {
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
    text
}

/// Prints one line per page and a summary; pages come in page order.
pub fn report(pages: &[String]) {
    let mut exact = 0;
    for (n, text) in pages.iter().enumerate() {
        exact += usize::from(*text == page_text(n as u32));
        let words: Vec<&str> = text.split_whitespace().collect();
        println!("page {n}: {} words, begins \"{}\"", words.len(), words[..4].join(" "));
    }
    println!("{exact} of {} pages recognized exactly", pages.len());
}
