//! The seed's OCR backend, in small: a document's pages are recognized in
//! parallel tasks (CPU-bound per page) and the text is assembled in page
//! order.

use ocr::{Page, font, page_text, read, report, scan};

const PAGES: u32 = 12;

/// Recognizes every glyph of a page: the CPU-heavy step that runs in parallel.
#[prism::remote]
fn recognize(page: Page) -> String {
    let text = read(&font(), &page);
    eprintln!("recognized page {}", page.number);
    text
}

fn main() {
    let results: Vec<_> = (0..PAGES).map(|n| recognize::remote(scan(n, &page_text(n)))).collect();
    report(&prism::get_all(&results).unwrap());
}
