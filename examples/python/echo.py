# Top-level refs among a task's arguments arrive as their values.
import prism


@prism.remote
def echo(a: int, b: int, c: int):
    """This function prints its input values to stdout."""
    print(a, b, c)


prism.get(echo.remote(1, 2, 3))  # 1 2 3
prism.get(echo.remote(prism.put(1), prism.put(2), prism.put(3)))  # 1 2 3
