"""A JSON file read a chunk at a time, for documents too big to hold whole (the dataset
manifest lists every question's full metadata: 100 MB of text at 100,000 questions, several
times that once parsed).

:class:`JsonStream` walks the outer levels itself (:meth:`~JsonStream.members` of an object,
:meth:`~JsonStream.items` of an array) and hands each value below them to the standard
library's scanner (:meth:`~JsonStream.value`), so a caller keeps what it needs of one element
before the next is read. What is accepted, and what each value parses to, is exactly what
``json.loads(path.read_text(encoding="utf-8"))`` gives; a document it refuses raises
:class:`JsonStreamError` worded as that call words its error (the ``json`` message with line,
column and char of the whole file, or the ``UnicodeDecodeError`` with the byte position in the
file), since users are told to search for and fix that place.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import json
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

#: bytes read at a time; the buffer holds about this much text (more only for a longer value)
CHUNK = 1 << 16
#: an error (or the end of a value) at least this far before the end of the text read is the
#: document's, not the chunk's cut: the scanner reports a value cut short within a few characters
#: of the cut (but an unterminated string, which it reports at the string's start)
_CUT = 16
_WS = re.compile(r"[ \t\n\r]*")  # json.decoder.WHITESPACE
T = TypeVar("T")


class JsonStreamError(ValueError):
    """The file is not JSON (or not UTF-8); ``str()`` says what and where, as ``json.loads`` of the
    whole text would have."""


@functools.cache
def _trailing_comma(close: str) -> tuple[str, bool]:
    """How this Python's ``json`` words a comma right before ``close``: the message, and whether it
    points at the comma (3.13+) or at ``close`` (before)."""
    snippet = "[1, ]" if close == "]" else '{"a": 1, }'
    try:
        json.loads(snippet)
    except json.JSONDecodeError as exc:
        return exc.msg, exc.pos == snippet.index(",")
    return "Expecting value", False  # not reached: every version refuses it


def _decode_error(exc: UnicodeDecodeError, offset: int) -> str:
    """``str(exc)`` as decoding the whole file would have worded it (``offset``: the file position
    of ``exc.object``'s first byte)."""
    start = exc.start + offset
    if exc.end == exc.start + 1:
        return (f"'{exc.encoding}' codec can't decode byte 0x{exc.object[exc.start]:02x} "
                f"in position {start}: {exc.reason}")
    return f"'{exc.encoding}' codec can't decode bytes in position {start}-{exc.end - 1 + offset}: {exc.reason}"


class JsonStream:
    """One JSON document in a binary file, read a chunk at a time (UTF-8, newlines translated as
    ``read_text`` does). The parser looks at ``buf[pos:]``; what is behind ``pos`` is dropped when
    the next chunk is read, so memory holds a chunk and the value being read, however big the file.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self._read = 0  # bytes read from the file
        self._cr = ""  # a "\r" held back: the next chunk may start with its "\n"
        self.buf = ""
        self.pos = 0
        self.eof = False
        # what was dropped before buf, for the positions in error messages
        self._base = 0  # characters
        self._lines = 0  # "\n" among them
        self._last_nl = -1  # the file position of the last one
        self._mark: int | None = None  # a position in buf not to drop (for an error message)

    # --- reading --------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Drop what was parsed and append the next chunk (or more: twice what is left, so a long
        value is read in a few steps, not one per chunk); False at end of file."""
        if self.eof:
            return False
        buf, pos = self.buf, self.pos if self._mark is None else min(self.pos, self._mark)
        if pos:
            if (lines := buf.count("\n", 0, pos)):
                self._lines += lines
                self._last_nl = self._base + buf.rfind("\n", 0, pos)
            self._base += pos
            buf = buf[pos:]
            self.pos -= pos
            if self._mark is not None:
                self._mark -= pos
        data = self._file.read(max(CHUNK, 2 * len(buf)))
        self.eof = not data
        held = len(self._decoder.getstate()[0])  # bytes of a character cut by the last chunk
        try:
            text = self._decoder.decode(data, self.eof)
        except UnicodeDecodeError as exc:
            raise JsonStreamError(_decode_error(exc, self._read - held)) from None
        self._read += len(data)
        text, self._cr = self._cr + text, ""
        if "\r" in text:
            if text.endswith("\r") and not self.eof:
                text, self._cr = text[:-1], "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.buf = buf + text
        return True

    def _drain(self) -> None:
        """Read to the end of the file, dropping the text: ``read_text`` decodes the whole file
        before ``json`` parses any of it, so a byte that is not UTF-8 anywhere (or a read error)
        is the error to report, before any error of the JSON."""
        self.pos = len(self.buf)
        while self._fill():
            self.pos = len(self.buf)

    def error(self, msg: str, at: int) -> JsonStreamError:
        """``msg`` at ``buf[at]``, worded as :class:`json.JSONDecodeError` words it for the whole
        file (unless the rest of the file is not UTF-8: that error is raised instead)."""
        nl = self.buf.rfind("\n", 0, at)
        line = self._lines + self.buf.count("\n", 0, at) + 1
        column = at - nl if nl >= 0 else self._base + at - self._last_nl
        text = f"{msg}: line {line} column {column} (char {self._base + at})"
        self._drain()
        return JsonStreamError(text)

    # --- parsing --------------------------------------------------------------------------------

    def start(self) -> str:
        """The first character of the document after whitespace ('' for none)."""
        while not self.buf and self._fill():
            pass
        if self.buf.startswith("\ufeff"):
            raise self.error("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
        return self.skip_ws()

    def skip_ws(self) -> str:
        """Skip whitespace; the next character ('' at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]  # always matches
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def value(self) -> Any:
        """The value at ``pos``, whole, parsed as ``json.loads`` parses it; ``pos`` moves past it."""
        while True:
            try:
                value, end = self._json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - _CUT
                if self.eof or not cut:
                    raise self.error(exc.msg, exc.pos) from None
            except RecursionError:
                self._drain()
                raise
            else:
                # a number cut short parses too ("7." of "7.5": 7, then "." is left): near the
                # end of what is read, read on to be sure
                if end + _CUT <= len(self.buf) or self.eof:
                    self.pos = end
                    return value
            self._fill()

    def members(self) -> Iterator[str]:
        """At a ``{``: stops at each member's value, giving its key (the caller reads the value:
        :meth:`value`, or :meth:`items`), then moves past the ``}``."""
        self.pos += 1
        c = self.skip_ws()
        if c == "}":
            self.pos += 1
            return
        while True:
            if c != '"':
                raise self.error("Expecting property name enclosed in double quotes", self.pos)
            key = self.value()
            if self.skip_ws() != ":":
                raise self.error("Expecting ':' delimiter", self.pos)
            self.pos += 1
            self.skip_ws()
            yield key
            c = self.skip_ws()
            if c == "}":
                self.pos += 1
                return
            if c != ",":
                raise self.error("Expecting ',' delimiter", self.pos)
            c = self._after_comma("}")

    def items(self) -> Iterator[None]:
        """At a ``[``: stops at each element (the caller reads it with :meth:`value`), then moves
        past the ``]``."""
        self.pos += 1
        if self.skip_ws() == "]":
            self.pos += 1
            return
        while True:
            yield
            c = self.skip_ws()
            if c == "]":
                self.pos += 1
                return
            if c != ",":
                raise self.error("Expecting ',' delimiter", self.pos)
            self._after_comma("]")

    def _after_comma(self, close: str) -> str:
        """Past a ``,`` and whitespace: the next character; a ``close`` there is an error."""
        self._mark = self.pos  # the comma
        self.pos += 1
        try:
            c = self.skip_ws()
        finally:
            comma, self._mark = self._mark, None
        if c == close:
            msg, at_comma = _trailing_comma(close)
            raise self.error(msg, comma if at_comma else self.pos)
        return c

    def end(self) -> None:
        """Only whitespace may follow the document."""
        if self.skip_ws():
            raise self.error("Extra data", self.pos)


# --- one big array in a document ---------------------------------------------------------------


class Unstreamed(Exception):
    """A document the streamed readers below leave to the whole-file read: not the shape they
    expect (a caller's walk raises it too, for an element it does not expect)."""


def object_without(path: str | Path, key: str, walk: Callable[[JsonStream], T]) -> tuple[dict[str, Any], T] | None:
    """The JSON object in the file ``path`` without its member ``key``, and what ``walk`` made of
    that member, called at its value as the stream passes it (so a list of any length is never
    held). None when the file cannot be read so: missing, not JSON, not an object, ``key`` absent
    or given twice, or ``walk`` raised :class:`Unstreamed`; the caller then reads it whole, which
    reports each of those as it always has."""
    walked: list[T] = []
    try:
        with open(path, "rb") as f:
            stream = JsonStream(f)
            if stream.start() != "{":
                return None
            doc: dict[str, Any] = {}
            for name in stream.members():
                if name != key:
                    doc[name] = stream.value()
                elif walked:
                    return None
                else:
                    walked.append(walk(stream))
            stream.end()
    except (OSError, JsonStreamError, RecursionError, Unstreamed):
        return None
    return (doc, walked[0]) if walked else None


def member_items(path: str | Path, key: str) -> Iterator[Any]:
    """The elements of the array that is member ``key`` of the JSON object in the file ``path``,
    one at a time. :class:`Unstreamed` if the document is not an object holding such an array;
    :class:`JsonStreamError` and :class:`OSError` as the read meets them."""
    with open(path, "rb") as f:
        stream = JsonStream(f)
        if stream.start() != "{":
            raise Unstreamed(f"{path} is not a JSON object")
        for name in stream.members():
            if name == key:
                if stream.skip_ws() != "[":
                    raise Unstreamed(f"{path}: {key} is not an array")
                for _ in stream.items():
                    yield stream.value()
                return
            stream.value()
    raise Unstreamed(f"{path} has no {key}")


#: bytes read at a time by :class:`IndentedArray`: a slice of about this much is parsed at once
_SLICE = 1 << 15
#: how far into the file :func:`indented_array` looks for the array, and the most it reads after it
_ENDS = 1 << 20


class IndentedArray:
    """A top-level array member of an object in a file written as ``json.dumps(doc, indent=2)``
    writes it, elements of objects: the document without the member, and the elements read a slice
    at a time (:meth:`batches`), each slice parsed by ``json.loads``, in C, where
    :func:`member_items` hands each element to Python's loop on its own (2.2x the time for the
    400,000 source entries of a 100,000-question release manifest). Made by :func:`indented_array`,
    which checks the layout first.

    A slice ends at ``},\n    {``, which in this layout only stands between two elements (a raw
    newline cannot be inside a string; anything nested in an element is indented deeper). A cut
    anywhere else would leave a bracket open and the slice would not parse; and slices that each
    parse as elements, joined by the commas cut out, are the array: what is read is what
    ``json.loads`` of the whole file gives, or :class:`Unstreamed`."""

    def __init__(self, path: Path, key: str, doc: dict[str, Any], start: int, end: int) -> None:
        self.path, self.key, self.doc, self._start, self._end = path, key, doc, start, end

    def items(self) -> Iterator[Any]:
        """The array's elements one at a time, as :func:`member_items` gives them, errors included:
        from :meth:`batches`, and where a slice does not parse, from :func:`member_items` past the
        elements given, so a file that is not JSON there is reported as :class:`JsonStream`
        reports it (which, decoding 64 KiB at a time, may have stopped a few elements sooner on
        bytes that are not UTF-8)."""
        given = 0
        try:
            for batch in self.batches():
                for element in batch:
                    yield element
                    given += 1
            return
        except Unstreamed:
            pass
        yield from itertools.islice(member_items(self.path, self.key), given, None)

    def batches(self) -> Iterator[list[Any]]:
        """The array's elements, a list at a time, in order. :class:`Unstreamed` where a slice does
        not parse (the file is not JSON there, or not this layout); the elements before it have
        been given by then. :class:`OSError` as the read meets it."""
        sep = b"},\n    {"  # between two elements: in this layout nowhere else (no raw newline in a string)
        with open(self.path, "rb") as f:
            f.seek(self._start + 1)  # after "["
            left, buf = self._end - self._start - 2, b""  # up to "]"
            while left > 0 or buf:
                chunk = f.read(min(_SLICE, left)) if left > 0 else b""
                if left > 0 and not chunk:
                    raise OSError(f"{self.path}: the file got shorter while it was read")
                left -= len(chunk)
                buf += chunk
                if left > 0:
                    cut = buf.rfind(sep)
                    if cut < 0:
                        continue
                    piece, buf = buf[:cut + 1], buf[cut + 2:]
                else:
                    piece, buf = buf, b""
                try:
                    batch = json.loads(b"[" + piece + b"]")
                except ValueError:
                    raise Unstreamed(f"{self.path}: not the indented layout") from None
                yield batch


def indented_array(path: str | Path, key: str) -> IndentedArray | None:
    """The member ``key`` of the JSON object in the file ``path`` as an :class:`IndentedArray`, if the
    file has the layout ``json.dumps(doc, indent=2)`` gives it: the member on a line of its own at
    two spaces (``\\n  "key": [``) within the first MiB, closed by the first ``\\n  ]`` after it,
    the rest of the document well-formed JSON with that array as the object's only member ``key``
    (a close found too soon leaves the rest unbalanced: it does not parse). None otherwise
    (missing, another layout, cut short, ...): the caller reads it with :class:`JsonStream`, which
    reports each of those as it always has."""
    path = Path(path)
    opening, closing = b'\n  "' + json.dumps(key).encode()[1:-1] + b'": [', b"\n  ]"
    try:
        with open(path, "rb") as f:
            first, at = b"", -1
            while at < 0 and len(first) < _ENDS:
                chunk = f.read(_SLICE)
                if not chunk:
                    return None
                first += chunk
                at = first.find(opening, max(0, len(first) - len(chunk) - len(opening)))
            if at < 0:
                return None
            start = at + len(opening) - 1  # the "["
            f.seek(start)
            carry, pos, end = b"", start, -1
            while end < 0:
                chunk = f.read(_SLICE)
                if not chunk:
                    return None
                window = carry + chunk
                hit = window.find(closing)
                if hit >= 0:
                    end = pos - len(carry) + hit + len(closing)  # just after the "]"
                carry = window[-(len(closing) - 1):]
                pos += len(chunk)
            f.seek(end)
            tail = b""
            while chunk := f.read(_SLICE):
                tail += chunk
                if len(tail) > _ENDS:
                    return None
        # the document with the array replaced by one no file holds: it must parse, with that array
        # as the object's own member `key`, given once (not an array nested deeper that happens to
        # be laid out so, nor one of two members of that name, which json.loads and a walk would
        # each take differently)
        token, twice = secrets.token_hex(16), []

        def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
            if sum(1 for name, _ in members if name == key) > 1:
                twice.append(True)
            return dict(members)

        doc = json.loads(first[:start] + json.dumps([token]).encode() + tail, object_pairs_hook=pairs)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get(key) != [token] or twice:
        return None
    del doc[key]
    return IndentedArray(path, key, doc, start, end)


def object_without_items(path: str | Path, key: str, walk: Callable[[Iterator[Any]], T]
                         ) -> tuple[dict[str, Any], T] | None:
    """:func:`object_without` for an array member, ``walk`` given its elements one at a time: a
    slice at a time in C when the file has the layout of ``json.dumps(doc, indent=2)``
    (:func:`indented_array`), else from :class:`JsonStream`. None as :func:`object_without` says
    (and when the member is not an array)."""
    fast = indented_array(path, key)
    if fast is None:
        def elements(stream: JsonStream) -> T:
            if stream.skip_ws() != "[":
                raise Unstreamed(f"{key} is not an array")
            return walk(stream.value() for _ in stream.items())

        return object_without(path, key, elements)
    try:
        return fast.doc, walk(fast.items())
    except (OSError, JsonStreamError, RecursionError, Unstreamed):
        return None


def array_items(path: str | Path, key: str) -> Iterator[Any]:
    """:func:`member_items`, the same elements and errors, a slice at a time in C when the file has
    the layout of ``json.dumps(doc, indent=2)`` (:func:`indented_array`)."""
    fast = indented_array(path, key)
    return fast.items() if fast is not None else member_items(path, key)
