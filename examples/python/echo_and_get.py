# Refs nested in an argument arrive as refs: the task gets them itself.
import prism


@prism.remote
def echo_and_get(x_list):  # List[ObjectRef]
    """This function prints its input values to stdout."""
    print("args:", x_list)
    print("values:", prism.get(x_list))


# Put the values (1, 2, 3) into prism's object store.
a, b, c = prism.put(1), prism.put(2), prism.put(3)

# prism does not resolve nested args, so `echo_and_get` sees the references.
prism.get(echo_and_get.remote([a, b, c]))
# -> prints args: [ObjectRef(...), ObjectRef(...), ObjectRef(...)]
#           values: [1, 2, 3]
