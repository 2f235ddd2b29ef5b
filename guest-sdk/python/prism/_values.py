"""Refs, actor handles and the value encoding (docs/encoding.md).

Values are one MessagePack document each: what a Rust task writes, a
Python task reads, and the reverse. A ref nested in a value is the
extension 0x50 with its 32 bytes, an actor handle the extension 0x41.

A ref keeps its object alive while this instance holds it, as in Ray.
Every `ObjectRef` of one id here is the same Python object, so the host is
told once, when the last reference to it goes, in batches.
"""

import struct
import weakref

import msgpack

REF_EXT = 0x50
ACTOR_EXT = 0x41

# Dropped refs are told to the host in batches of this many (and before any
# call that blocks).
RELEASE_BATCH = 64

_WORDS = struct.Struct("<4Q")


class _Holds:
    """Which refs this instance holds, and which it has let go of."""

    def __init__(self):
        self.live = {}
        self.dropped = []
        # Dropped with a call's result, which holds them once the host has
        # stored it: told from the next call on.
        self.deferred = []
        self.quiet = False

    def gone(self, words, weak):
        if self.live.get(words) is not weak:
            return
        del self.live[words]
        if self.quiet:
            self.deferred.append(words)
            return
        self.dropped.append(words)
        if len(self.dropped) >= RELEASE_BATCH:
            self.flush()

    def flush(self):
        if self.dropped:
            from . import _host

            dropped, self.dropped = self.dropped, []
            _host.objects.release(dropped)

    def begin_call(self):
        self.quiet = False
        self.dropped.extend(self.deferred)
        self.deferred = []


HOLDS = _Holds()


class ObjectRef:
    """A reference to an immutable object (Ray's `ObjectRef`).

    Get its value with `prism.get`. Refs are values too: put them in lists,
    dicts or objects, pass them to tasks, and they arrive as refs.
    """

    __slots__ = ("_words", "__weakref__")

    def __new__(cls, words):
        weak = HOLDS.live.get(words)
        ref = weak() if weak is not None else None
        if ref is None:
            ref = object.__new__(cls)
            ref._words = words
            HOLDS.live[words] = weakref.ref(ref, lambda weak, words=words: HOLDS.gone(words, weak))
        return ref

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

    __slots__ = ("_words", "_class")

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
        from ._api import ActorMethod

        return ActorMethod(self, method)

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


def encode(value):
    """`value` as one MessagePack document."""
    return _packer.pack(value)


def decode(data):
    """The value of one MessagePack document."""
    return msgpack.unpackb(data, raw=False, ext_hook=_ext, strict_map_key=False)
