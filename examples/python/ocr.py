# The seed's OCR backend, across languages: Python tasks scan the pages of a
# document in parallel, the heavy step (recognizing every glyph) is the Rust
# task `recognize` of the `ocr` example's component, and the text comes back
# in page order.
#
#   prism run ocr.py --with target/guests/wasm32-wasip2/release/ocr.wasm
#
# The page format and the made-up font are the Rust example's
# (examples/ocr/src/lib.rs), so what Python scans, Rust can read.
import prism

PAGES = 12
GLYPH, COLUMNS, LINES = 8, 64, 48
WORDS = ["ray", "prism", "object", "task", "actor", "wasm", "page", "layout", "table", "title"]
MASK = (1 << 64) - 1


def xorshift(state):
    """The Rust example's deterministic generator, from `state`."""
    while True:
        state ^= (state << 13) & MASK
        state ^= state >> 7
        state ^= (state << 17) & MASK
        yield state


def glyph(c):
    """The 8x8 bitmap of a printable character."""
    bits = 0 if c == ord(" ") else next(xorshift(0x9E3779B97F4A7C15 ^ (c * 0x2545F4914F6CDD1D) & MASK))
    return [(bits >> i) & 1 for i in range(GLYPH * GLYPH)]


def page_text(n):
    """The text printed on page `n`."""
    rng, text = xorshift(n + 1), ""
    while len(text) < COLUMNS * LINES:
        text += WORDS[next(rng) % len(WORDS)] + " "
    return text[: COLUMNS * LINES]


@prism.remote
def scan(n):
    """Prints page `n` with a little noise, as a scanner would see it."""
    width = COLUMNS * GLYPH
    pixels = bytearray(width * LINES * GLYPH)
    noise = xorshift(n * 7919 + 17)
    for i, c in enumerate(page_text(n).encode()):
        line, col = divmod(i, COLUMNS)
        for p, ink in enumerate(glyph(c)):
            y, x = line * GLYPH + p // GLYPH, col * GLYPH + p % GLYPH
            pixels[y * width + x] = ink ^ (next(noise) % 29 == 0)
    return {"number": n, "pixels": bytes(pixels)}


ocr = prism.component("ocr")
pages = [ocr.recognize.remote(scan.remote(n)) for n in range(PAGES)]
exact = 0
for n, text in enumerate(prism.get(pages)):
    exact += text == page_text(n)
    print(f'page {n}: {len(text.split())} words, begins "{" ".join(text.split()[:4])}"')
print(f"{exact} of {PAGES} pages recognized exactly")
