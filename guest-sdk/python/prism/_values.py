"""Refs, actor handles and the value encoding (docs/encoding.md).

Values are one MessagePack document each: what a Rust task writes, a
Python task reads, and the reverse. A ref nested in a value is the
extension 0x50 with its 32 bytes, an actor handle the extension 0x41.

A ref keeps its object alive while this instance holds it, as in Ray. The
host is told once the last `ObjectRef` of an id here goes, in batches.

Small scalars, the bulk of what tasks pass, skip the MessagePack library:
its pure-Python form (the only one in a component) spends more setting up a
call than such a value takes to read or write.
"""

import struct

import msgpack

from ._host import objects

REF_EXT = 0x50
ACTOR_EXT = 0x41

# Dropped refs are told to the host in batches of this many, and before any
# call that blocks, unless they are small (below).
RELEASE_BATCH = 64

# An object stored inline (the host's INLINE_OBJECT_MAX); any larger one
# reaches a guest as a mapping, not as bytes.
INLINE_MAX = 64 << 10

_WORDS = struct.Struct("<4Q")


class _Holds:
    """How many `ObjectRef`s this instance has of each id, and the ids whose
    last one went since the host was last told.

    A ref whose object this instance knows is small (it put it, or read it
    inline) may stay untold across a blocking call, until its batch fills:
    that bounds what the host keeps for it to 64 objects of 64 KiB, and
    spares a host call per round trip. Any other ref is told before the
    instance blocks, so a large object never outlives its last ref by a
    wait."""

    def __init__(self):
        self.counts = {}
        self.small = set()
        # Told before the next blocking call.
        self.dropped = []
        # Told with the next batch.
        self.lazy = []
        # Dropped with a call's result, which holds them once the host has
        # stored it: told from the next call on.
        self.deferred = []
        self.quiet = False

    def gone(self, words):
        small = words in self.small
        if small:
            self.small.discard(words)
        if self.quiet:
            self.deferred.append(words)
            return
        pending = self.lazy if small else self.dropped
        pending.append(words)
        if len(pending) >= RELEASE_BATCH:
            self.flush()

    def flush(self):
        """Tells the host every dropped ref."""
        dropped = self.dropped + self.lazy if self.lazy else self.dropped
        if dropped:
            self.dropped, self.lazy = [], []
            objects.release(dropped)

    def before_blocking(self):
        """Tells the host the dropped refs that must not wait for a batch."""
        if self.dropped:
            self.flush()

    def begin_call(self):
        """A call into this instance begins: what the last result held may
        be told from now on. (Every call that returns a result sets `quiet`.)"""
        self.quiet = False
        if self.deferred:
            self.dropped.extend(self.deferred)
            self.deferred = []


HOLDS = _Holds()
_COUNTS = HOLDS.counts


class ObjectRef:
    """A reference to an immutable object (Ray's `ObjectRef`).

    Get its value with `prism.get`. Refs are values too: put them in lists,
    dicts or objects, pass them to tasks, and they arrive as refs.
    """

    # A count per id rather than one interned object: a weak reference per
    # ref costs more than the whole `put` it came from.
    __slots__ = ("_words",)

    def __init__(self, words):
        self._words = words
        _COUNTS[words] = _COUNTS.get(words, 0) + 1

    def __del__(self):
        words = self._words
        left = _COUNTS[words] - 1
        if left:
            _COUNTS[words] = left
        else:
            del _COUNTS[words]
            HOLDS.gone(words)

    def __copy__(self):
        return ObjectRef(self._words)

    def __deepcopy__(self, memo):
        return ObjectRef(self._words)

    @classmethod
    def _from_bytes(cls, data):
        return cls(_WORDS.unpack(data))

    def binary(self):
        """The 32 bytes that name the object."""
        return _WORDS.pack(*self._words)

    def hex(self):
        return self.binary().hex()

    def __reduce__(self):
        raise TypeError("an ObjectRef travels inside prism values, not by pickle")

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other._words == self._words

    def __hash__(self):
        return hash(self._words)

    def __repr__(self):
        return f"ObjectRef({self.hex()})"


class ActorHandle:
    """A handle to an actor (Ray's `ActorHandle`): `handle.method.remote(...)`
    calls a method and returns the ref of its result at once."""

    # `handle.method` is made once, then found in `__dict__` without
    # `__getattr__`.
    __slots__ = ("_words", "_class", "__dict__")

    #: Makes `handle.method` (`prism._api.ActorMethod`, set there).
    _make_method = None

    def __init__(self, words, cls=None):
        self._words = words
        # The Python class, where known, to tell generator methods.
        self._class = cls

    @classmethod
    def _from_bytes(cls, data):
        return cls(_WORDS.unpack(data))

    def binary(self):
        """The actor's 32-byte id."""
        return _WORDS.pack(*self._words)

    def __getattr__(self, method):
        if method.startswith("__"):
            raise AttributeError(method)
        bound = self.__dict__[method] = ActorHandle._make_method(self, method)
        return bound

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._words == self._words

    def __hash__(self):
        return hash(self._words)

    def __repr__(self):
        name = self._class.__name__ if self._class is not None else "Actor"
        return f"ActorHandle({name}, {self.binary().hex()})"


def _default(value):
    if isinstance(value, ObjectRef):
        return msgpack.ExtType(REF_EXT, value.binary())
    if isinstance(value, ActorHandle):
        return msgpack.ExtType(ACTOR_EXT, value.binary())
    raise TypeError(
        f"a value of type `{type(value).__name__}` cannot be sent: prism values are None, bool, int, float, "
        "str, bytes, lists, tuples, dicts, refs and actor handles"
    )


def _ext(code, data):
    if code == REF_EXT and len(data) == 32:
        return ObjectRef._from_bytes(data)
    if code == ACTOR_EXT and len(data) == 32:
        return ActorHandle._from_bytes(data)
    return msgpack.ExtType(code, data)


_packer = msgpack.Packer(default=_default, use_bin_type=True)

_NIL = b"\xc0"
# Positive fixints, and the headers of bin 8, made once.
_FIXINT = [bytes((i,)) for i in range(128)]
_BIN8 = [b"\xc4" + bytes((n,)) for n in range(256)]


def encode(value):
    """`value` as one MessagePack document (smallest forms, as msgpack and
    the Rust SDK write them, so equal values give equal refs)."""
    kind = type(value)
    if kind is int and 0 <= value < 128:
        return _FIXINT[value]
    if kind is bytes and len(value) < 256:
        return _BIN8[len(value)] + value
    if value is None:
        return _NIL
    return _packer.pack(value)


def decode(data):
    """The value of one MessagePack document."""
    n = len(data)
    if n == 1:
        first = data[0]
        if first < 0x80:
            return first
        if first == 0xC0:
            return None
        if first == 0xC2 or first == 0xC3:
            return first == 0xC3
    elif n > 1:
        first = data[0]
        if first == 0xC4 and data[1] == n - 2:
            return bytes(data[2:])
        if 0xA0 <= first <= 0xBF and first - 0xA0 == n - 1:
            return str(data[1:], "utf-8")
    return msgpack.unpackb(data, raw=False, ext_hook=_ext, strict_map_key=False)
