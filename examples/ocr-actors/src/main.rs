//! The OCR story with actors: a pool of recognizers, each loading its model
//! (a large table) once in its constructor and keeping it across pages, as
//! a Ray actor keeps a loaded model.

use ocr::{Font, Page, font, page_text, read, report, scan};

const PAGES: u32 = 12;
const POOL: usize = 2;

/// The "weights" each recognizer loads: 16 MiB, built once per actor.
const MODEL_WORDS: usize = 4 << 20;

#[prism::actor]
struct Recognizer {
    font: Font,
    weights: Vec<u32>,
    pages: u32,
}

#[prism::actor]
impl Recognizer {
    fn load() -> Self {
        let weights = (0..MODEL_WORDS as u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        Recognizer { font: font(), weights, pages: 0 }
    }

    fn recognize(&mut self, page: Page) -> String {
        self.pages += 1;
        read(&self.font, &page)
    }

    /// Pages read and the model's size: the model was loaded once.
    fn stats(&self) -> (u32, usize) {
        (self.pages, self.weights.len())
    }
}

fn main() {
    let pool: Vec<_> = (0..POOL).map(|_| Recognizer::remote()).collect();
    let results: Vec<_> =
        (0..PAGES).map(|n| pool[n as usize % POOL].recognize(scan(n, &page_text(n))).remote()).collect();
    report(&prism::get_all(&results).unwrap());
    for (i, recognizer) in pool.iter().enumerate() {
        let (pages, words) = prism::get(&recognizer.stats().remote()).unwrap();
        println!("recognizer {i}: {pages} pages with one model of {} MiB", (words * 4) >> 20);
    }
}
