# Values across languages: a Python driver sends every kind of value to the
# Rust task `mixed` (tests/programs/src/bin/calls.rs, loaded with
# `--with calls.wasm`), which reads each and answers in kind.
import prism


@prism.remote
class Counter:
    def __init__(self):
        self.n = 0

    def increment(self):
        self.n += 1
        return self.n


counter = Counter.remote()
sent = {
    "int": 1,
    "float": 1.25,
    "text": "prism",
    "data": b"\x00\x01\xff",
    "list": [1, 2, 3],
    "map": {"a": 1},
    "none": None,
    "nested": prism.put(41),
    "counter": counter,
}
got = prism.get(prism.component("calls").mixed.remote(sent))
for key in ["int", "float", "text", "data", "list", "map", "none"]:
    print(f"{key}: {got[key]!r}")
print("nested:", type(got["nested"]).__name__, prism.get(got["nested"]))
print("counter:", got["counter"] == counter, prism.get(got["counter"].increment.remote()))
