# A task reads the driver's global refs, as a Ray closure captures them.
import prism

# Put the values (1, 2, 3) into prism's object store.
a, b, c = prism.put(1), prism.put(2), prism.put(3)


@prism.remote
def print_via_capture():
    """This function prints the values of (a, b, c) to stdout."""
    print(prism.get([a, b, c]))


prism.get(print_via_capture.remote())  # prints [1, 2, 3]
