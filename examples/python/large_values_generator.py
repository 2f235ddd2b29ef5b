# The seed's "GOOD" pattern: a task yields large values one at a time, each
# its own object, so only about one is in memory at once. bytes stand in for
# the seed's numpy arrays (no numpy in a component).
import random
import sys

import prism

SIZE = 100_000_000


@prism.remote
def large_values_generator(num_returns):
    for i in range(num_returns):
        yield random.Random(i).randbytes(SIZE)
        print(f"yielded return value {i}")


num_returns = int(sys.argv[1]) if len(sys.argv) > 1 else 3
for i, ref in enumerate(large_values_generator.remote(num_returns)):
    value = prism.get(ref)
    print(f"value {i}: {len(value)} bytes, max {max(value)}")
    del value, ref
