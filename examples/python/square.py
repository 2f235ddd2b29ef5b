# The seed's first program: four tasks, their results in order.
import prism


@prism.remote
def square(x):
    return x * x


futures = [square.remote(i) for i in range(4)]
print(prism.get(futures))  # [0, 1, 4, 9]
