# The seed's actor: state kept between calls, calls run in order.
import prism


@prism.remote
class Counter:
    def __init__(self):
        self.value = 0

    def increment(self):
        self.value += 1
        return self.value

    def get_counter(self):
        return self.value


# Create an actor from this class.
counter = Counter.remote()
print(prism.get([counter.increment.remote() for _ in range(3)]))  # [1, 2, 3]
print(prism.get(counter.get_counter.remote()))  # 3
