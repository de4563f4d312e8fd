"""The candidate's side of a code execution: it loads the program, then answers calls on it.

It is the sandboxed ``main.py`` of every code execution (standard library only; never imported
by the package). It never sees a test, an expected value or an assertion, and it has nothing
to report success with: the trusted judge (:mod:`aipo_env.tasks.code_judge`, outside the
sandbox) runs the tests and sends this process only the *calls* they make on the program's
names, with their arguments. Whatever the program does, all it can send back is the values
of those calls.

Requests come on standard input as frames: a 4-byte big-endian length, then a :mod:`marshal`
payload (written by the trusted parent; ``json`` would cost as much start-up time as the rest
of the run). The first frame is ``{"program", "setup", "seconds"}``; each later frame is one of

* ``("call", id, target, args, kwargs, seconds)``: call ``target`` (a name of the program's
  namespace, or a handle number) with the encoded arguments, under a timer of ``seconds``;
* ``("getattr", id, target, name, seconds)``: the attribute ``name`` of ``target``;
* ``("stdio", id, input, seconds)``: run the whole program as ``__main__`` in a fresh namespace
  with ``input`` (bytes) as its standard input, and send back what it printed (a program that
  calls ``sys.exit`` or ``exit()`` has finished normally). Programs judged this way are only
  compiled at load (the first frame has ``"stdio": True``);
* ``("end",)``: exit.

Replies go to the original standard output, one JSON array a line (written by the C encoder of
``_json``; the program's own prints go to standard error):

* ``("loaded", names)`` or ``("load_error", detail)`` once the program and the setup's imports ran;
* ``("value", id, encoded)``, ``("raised", id, exception type, message)`` or ``("timeout", id)``.

**Encoding.** A value is a tagged tuple tree built from exact builtin types only (``type(x) is
int``, never a subclass): ``("n",)`` None, ``("b", bool)``, ``("i", hex)``, ``("f", float.hex)``,
``("c", real hex, imaginary hex)``, ``("s", str)``, ``("y", hex of the bytes)``,
``("l"|"t"|"set"|"fs", [items])``, ``("d", [(key, value)])``, ``("r", start hex, stop hex, step
hex)`` a range, ``("dq", [items])`` a deque, ``("it", [items])`` an iterator (materialised, so
``list(f(x))`` works and ``f(x) == [...]`` stays false), and
``("h", number)`` a handle for any other object (a class instance, a function), which stays here
and can be passed back in later calls. An instance of a subclass of a builtin type (a
``Counter``, a namedtuple, an ``int`` subclass) is sent as its plain builtin data: its own
``__eq__`` never leaves. Trees are bounded in nodes (a range counts its length) and depth, and
integers in bits; a value past a bound is an error of the test that asked for it. The judge
checks the same bounds again (:mod:`aipo_env.tasks.code_values`), and more.
"""

import _json  # the C module: `json` would import re
import _signal as signal  # the C module: `signal` would import enum, a tenth of the start-up
import builtins
import marshal
import os

_MAX_NODES = 200_000
_MAX_DEPTH = 48
_MAX_ITEMS = 100_000
_MAX_INT_BITS = 1 << 17


class _TestTimeout(BaseException):
    """Raised by the per-call timer; a BaseException so that ``except Exception`` misses it."""


class _TooLarge(Exception):
    """A value past the encoding's bounds."""


def _refuse(value):
    raise TypeError("not part of the encoding")


def _describe(exc, _type=type, _str=str, _base=BaseException):
    try:
        message = _str(exc)
    except _base:
        message = ""
    name = _type(exc).__name__
    return (f"{name}: {message}" if message else name)[:300]


def main():
    stdin = os.dup(0)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    report_fd = os.dup(1)
    os.dup2(2, 1)  # the program's prints join its standard error
    _serve(stdin, report_fd)


def _serve(
    stdin,
    report_fd,
    _read=os.read,
    _write=os.write,
    _exit=os._exit,
    _loads=marshal.loads,
    _compile=compile,
    _exec=exec,
    _getattr=getattr,
    _isinstance=isinstance,
    _type=type,
    _len=len,
    _iter=iter,
    _next=next,
    _id=id,
    _hex=hex,
    _fhex=float.hex,
    _int_from=int.from_bytes,
    _timeout=_TestTimeout,
    _too_large=_TooLarge,
    _base=BaseException,
    _signal=signal.signal,
    _setitimer=signal.setitimer,
    _alarm=signal.SIGALRM,
    _real=signal.ITIMER_REAL,
    _describe=_describe,
):
    # bound before the program runs; patching them could only spoil the program's own answers
    kinds = {list: "l", tuple: "t", set: "set", frozenset: "fs"}
    containers = {"l": list, "t": tuple, "set": set, "fs": frozenset}
    bases = (bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict)
    convert = {
        bool: lambda v: bool.__bool__(v),
        int: lambda v: int.__index__(v),
        float: lambda v: float.__float__(v),
        complex: lambda v: complex(float.__float__(v.real), float.__float__(v.imag)),
        str: lambda v: str.__str__(v),
        bytes: lambda v: bytes(v),
        list: lambda v: list(list.__iter__(v)),
        tuple: lambda v: tuple(tuple.__iter__(v)),
        set: lambda v: set(set.__iter__(v)),
        frozenset: lambda v: frozenset(frozenset.__iter__(v)),
        dict: lambda v: {k: dict.__getitem__(v, k) for k in dict.__iter__(v)},
    }
    handles = {}
    to_json = _json.make_encoder(
        markers=None,
        default=_refuse,
        encoder=_json.encode_basestring_ascii,
        indent=None,
        key_separator=":",
        item_separator=",",
        sort_keys=False,
        skipkeys=False,
        allow_nan=False,
    )

    def reply(*record):
        _write(report_fd, ("".join(to_json(record, 0)) + "\n").encode())

    def frame():
        header = read_exactly(4)
        return _loads(read_exactly(_int_from(header, "big")))

    def read_exactly(count):
        data = b""
        while _len(data) < count:
            chunk = _read(stdin, count - _len(data))
            if not chunk:
                _exit(0)  # the judge is gone
            data += chunk
        return data

    def encode(value, depth, budget):
        budget[0] -= 1
        if budget[0] < 0 or depth > _MAX_DEPTH:
            raise _too_large("the value is too large or too deeply nested to send")
        kind = _type(value)
        if value is None:
            return ("n",)
        if kind is bool:
            return ("b", value)
        if kind is int:
            if value.bit_length() > _MAX_INT_BITS:
                raise _too_large("the integer is too large to send")
            return ("i", _hex(value))
        if kind is float:
            return ("f", _fhex(value))
        if kind is complex:
            return ("c", _fhex(value.real), _fhex(value.imag))
        if kind is str:
            return ("s", value)
        if kind is bytes:
            return ("y", value.hex())
        if kind in kinds:
            return (kinds[kind], [encode(item, depth + 1, budget) for item in value])
        if kind is dict:
            return (
                "d",
                [(encode(k, depth + 1, budget), encode(v, depth + 1, budget)) for k, v in value.items()],
            )
        if kind is range:
            budget[0] -= _len(value)
            if budget[0] < 0 or _len(value) > _MAX_ITEMS:
                raise _too_large("the range is too long to send")
            return ("r", _hex(value.start), _hex(value.stop), _hex(value.step))
        for base in bases:  # a subclass (Counter, a namedtuple): its plain data, never its methods
            if _isinstance(value, base):
                return encode(convert[base](value), depth, budget)
        if kind.__name__ == "deque" and kind.__module__ == "collections":
            return ("dq", [encode(item, depth + 1, budget) for item in value])
        if _getattr(kind, "__next__", None) is not None and _getattr(kind, "__iter__", None) is not None:
            items, iterator = [], _iter(value)
            for item in iterator:
                if _len(items) >= _MAX_ITEMS:
                    raise _too_large("the iterator yields too many items to send")
                items.append(encode(item, depth + 1, budget))
            return ("it", items)
        handles[_id(value)] = value
        return ("h", _id(value))

    def decode(tree):
        tag = tree[0]
        if tag == "h":
            return handles[tree[1]]
        if tag == "n":
            return None
        if tag in ("b", "s"):
            return tree[1]
        if tag == "y":
            return bytes.fromhex(tree[1])
        if tag == "i":
            return int(tree[1], 16)
        if tag == "f":
            return float.fromhex(tree[1])
        if tag == "c":
            return complex(float.fromhex(tree[1]), float.fromhex(tree[2]))
        if tag in containers:
            return containers[tag](decode(item) for item in tree[1])
        if tag == "d":
            return {decode(k): decode(v) for k, v in tree[1]}
        if tag == "r":
            return range(int(tree[1], 16), int(tree[2], 16), int(tree[3], 16))
        if tag == "it":
            return _iter([decode(item) for item in tree[1]])
        if tag == "dq":
            return __import__("collections").deque(decode(item) for item in tree[1])
        raise ValueError(f"unknown tag {tag!r}")

    def on_alarm(signum, frame):
        raise _timeout()

    def leave(code=None):
        raise SystemExit(code)

    def run_whole(stdin_bytes):
        import io  # only programs judged by their output pay for it

        sys = __import__("sys")
        stdin = io.TextIOWrapper(io.BytesIO(stdin_bytes), encoding="utf-8", errors="replace")
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)
        saved = sys.stdin, sys.stdout
        sys.stdin, sys.stdout = stdin, stdout
        try:
            # exit() and quit() come from `site`, which the sandbox does not load
            _exec(whole, {"__name__": "__main__", "__builtins__": builtins, "exit": leave, "quit": leave})
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise
        finally:
            sys.stdin, sys.stdout = saved
        stdout.flush()
        return stdout.buffer.getvalue().decode("utf-8", errors="replace")

    setup = frame()
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    whole = None
    try:
        _setitimer(_real, 0)
        _signal(_alarm, on_alarm)
        _setitimer(_real, float(setup["seconds"]))
        if setup.get("stdio"):
            whole = _compile(setup["program"], "solution.py", "exec")
        else:
            _exec(_compile(setup["program"], "solution.py", "exec"), namespace)
            _exec(_compile(setup["setup"], "<test imports>", "exec"), namespace)
        _setitimer(_real, 0)
    except _timeout:
        reply("load_error", f"loading took longer than {float(setup['seconds']):g} s")
        _exit(0)
    except _base as exc:
        _setitimer(_real, 0)
        reply("load_error", _describe(exc))
        _exit(0)
    names = [name for name in namespace if _type(name) is str and not name.startswith("__")]
    reply("loaded", names)
    while True:
        request = frame()
        if request[0] == "end":
            _exit(0)
        number = request[1]
        try:
            _signal(_alarm, on_alarm)
            _setitimer(_real, float(request[-1]))
            try:
                target = request[2]
                if request[0] != "stdio":
                    subject = handles[target] if _type(target) is int else namespace[target]
                if request[0] == "stdio":
                    value = run_whole(request[2])
                elif request[0] == "call":
                    args = [decode(item) for item in request[3]]
                    kwargs = {key: decode(item) for key, item in request[4]}
                    value = subject(*args, **kwargs)
                else:
                    value = _getattr(subject, request[3])
                encoded = encode(value, 0, [_MAX_NODES])
                _setitimer(_real, 0)
                reply("value", number, encoded)
            except _timeout:
                raise
            except _base as exc:
                _setitimer(_real, 0)
                reply("raised", number, _type(exc).__name__, _describe(exc))
        except _timeout:
            reply("timeout", number)
        except _base as exc:  # the timer fired between the handlers, or something stranger
            _setitimer(_real, 0)
            reply("raised", number, _type(exc).__name__, _describe(exc))


if __name__ == "__main__":
    main()
