# A task that starts tasks of its own and waits for them.
import prism


@prism.remote
def square(x):
    return x * x


@prism.remote
def sum_of_squares(n):
    return sum(prism.get([square.remote(i) for i in range(n)]))


print(prism.get(sum_of_squares.remote(10)))  # 285
