"""A json object file read one value at a time: the byte range of every top-level value is indexed once,
and a value is parsed only when it is asked for.

Mask files of the RVOS benchmarks (MeViS ``mask_dict.json``, ReVOS ``mask_dict.json`` and
``mask_dict_foreground.json``) are one json object ``{key: [COCO RLE or null per frame]}`` of hundreds of
MB; ``json.load`` turns them into several times that much Python memory, and the official scripts then copy
it into every worker process. :class:`LazyJsonObject` keeps only ``{key: (start, end)}`` byte offsets
(some tens of bytes per key); each process (a pickled copy holds the path and the offsets, not the data)
reads and parses the values it needs with one ``pread`` each.

The index is built in one pass over the file in bounded memory (chunks of ``chunk_size`` bytes; the json
values are parsed by the standard C scanner and dropped), so building it needs about one chunk plus the
largest single value, whatever the file size.
"""
import codecs
import json
import os
import os.path as osp
from json.decoder import scanstring
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from soc_mm.datasets.utils import DuplicateKeyError, json_key, parse_json_unique, unreadable_json_error

#: bytes read per step while indexing (a value larger than this is read whole, the chunk grows for it)
DEFAULT_CHUNK_SIZE = 16 << 20
_WHITESPACE = ' \t\n\r'
#: a value ending closer than this to the window's end is parsed again with more of the file
_NUMBER_MARGIN = 64


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


class _Malformed(ValueError):
    """The file is not a json object (raised as is: reading more of the file cannot help)."""


class _NeedMore(Exception):
    """The window ends inside the key or value being parsed."""


class _ChunkReader:
    """The file as a text window ``text`` whose first character is at byte ``base``; :meth:`more` forgets
    what is before a given position and appends the next chunk."""

    def __init__(self, f, chunk_size: int):
        self.f = f
        self.chunk_size = chunk_size
        self.text = ''
        self.ascii = True  # text is ascii: character and byte offsets agree
        self.base = 0  # byte offset of text[0]
        self.eof = False
        self._decoder = codecs.getincrementaldecoder('utf-8')()  # keeps a character split between chunks

    def more(self, keep_from: int) -> int:
        """Forget ``text[:keep_from]`` and append the next chunk.

        Returns:
            int: how far positions moved (subtract it from positions >= ``keep_from``), or -1 at the end of
            the file (nothing changed).
        """
        if self.eof:
            return -1
        raw = self.f.read(self.chunk_size)
        added = self._decoder.decode(raw, final=not raw)  # raises on malformed or truncated utf-8
        if not raw:
            self.eof = True
            return -1
        if keep_from:
            self.base = self.byte_offset(keep_from)
            self.text = self.text[keep_from:]
        self.text += added
        self.ascii = self.text.isascii() if not self.ascii or keep_from else added.isascii()
        return keep_from

    def byte_offset(self, pos: int) -> int:
        """Byte offset in the file of character ``pos`` of ``text``."""
        return self.base + (pos if self.ascii else len(self.text[:pos].encode('utf-8')))


def index_json_object(path: str, what: str = 'json file',
                      chunk_size: int = DEFAULT_CHUNK_SIZE) -> Dict[str, Tuple[int, int]]:
    """Byte range ``(start, end)`` of the value of every key of the json object in ``path``.

    Args:
        path (str): a json file holding one object ``{key: value, ...}``.
        what (str): what the file is, named in errors.
        chunk_size (int): bytes read per step.

    Returns:
        dict: ``{key: (start, end)}`` in file order; bytes ``[start, end)`` of the file are the value's
        json text.

    Raises:
        FileNotFoundError: no such file. ValueError: not utf-8 json, not one object, or
        :class:`DuplicateKeyError` (a key repeated at the top level; a repeat inside a value is found
        when the value is read).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what}: file not found: {path}')
    decoder = json.JSONDecoder()
    index: Dict[str, Tuple[int, int]] = {}
    with open(path, 'rb') as f:
        reader = _ChunkReader(f, chunk_size)

        def fail(pos: int, expected: str):
            found = repr(reader.text[pos:pos + 20]) if pos < len(reader.text) else 'the end of the file'
            raise _Malformed(f'{what}: {path} is not one json object: expected {expected} at byte '
                             f'{reader.byte_offset(pos)}, found {found}')

        def next_char(pos: int) -> int:
            """Position of the next non-whitespace character (reading more as needed; may be the window's
            end at the end of the file); the window may move: positions before ``pos`` are invalid after."""
            while True:
                pos = _skip_ws(reader.text, pos)
                if pos < len(reader.text):
                    return pos
                shift = reader.more(pos)
                if shift < 0:
                    return pos
                pos -= shift

        try:
            pos = next_char(0)
            if reader.text[pos:pos + 1] == '\ufeff':
                fail(pos, 'no byte-order mark')
            if reader.text[pos:pos + 1] != '{':
                fail(pos, "a json object '{'")
            pos = next_char(pos + 1)
            if reader.text[pos:pos + 1] == '}':
                pos += 1
            else:
                while True:
                    if reader.text[pos:pos + 1] != '"':
                        fail(pos, 'a key string')
                    while True:  # the key and its value; read more while the window ends inside them
                        try:
                            key, end = scanstring(reader.text, pos + 1, True)
                            colon = _skip_ws(reader.text, end)
                            if colon >= len(reader.text) and not reader.eof:
                                raise _NeedMore()
                            if reader.text[colon:colon + 1] != ':':
                                fail(colon, "':'")
                            start = _skip_ws(reader.text, colon + 1)
                            _, stop = decoder.raw_decode(reader.text, start)
                            if stop + _NUMBER_MARGIN > len(reader.text) and not reader.eof:
                                # a number cut by the window's end ("-2." of "-2.5e3") parses as a shorter one
                                raise _NeedMore()
                            break
                        except _NeedMore:
                            pos -= max(reader.more(pos), 0)  # at the end of the file: parse again, as is
                        except json.JSONDecodeError:
                            shift = reader.more(pos)
                            if shift < 0:
                                raise
                            pos -= shift
                    if key in index:
                        raise DuplicateKeyError(
                            f'{path}: the object at <top level> has the key {json_key(key)} more than once '
                            '(json readers keep only the last one, silently dropping the others); every key of '
                            'an annotation file must be unique')
                    index[key] = (reader.byte_offset(start), reader.byte_offset(stop))
                    pos = next_char(stop)
                    if reader.text[pos:pos + 1] == '}':
                        pos += 1
                        break
                    if reader.text[pos:pos + 1] != ',':
                        fail(pos, "',' or '}'")
                    pos = next_char(pos + 1)
            pos = next_char(pos)
            if pos < len(reader.text):
                fail(pos, 'the end of the file after the object')
        except (DuplicateKeyError, _Malformed):
            raise
        except UnicodeDecodeError as error:
            raise ValueError(f'{what}: {path} is not utf-8 ({error})') from None
        except json.JSONDecodeError as error:
            raise ValueError(f'{what}: {path} is not valid json (near byte '
                             f'{reader.byte_offset(min(error.pos, len(reader.text)))}: {error.msg})') from None
        except (RecursionError, ValueError) as error:  # too deep, or an integer of more than 4300 digits
            raise unreadable_json_error(f'{what}: {path}', error) from None
    return index


class LazyJsonObject(Mapping):
    """A read-only mapping over a json object file whose values are parsed when they are read.

    ``obj[key]`` reads the bytes of that value (one ``os.pread``) and parses them with
    :func:`soc_mm.datasets.utils.parse_json_unique` (a repeated key inside the value is an error naming
    the file, the key and the field); nothing is cached. Pickling keeps the path and the index only, so a
    worker process gets a few bytes per key instead of the data, and opens the file itself.

    Args:
        path (str): the json file (one object at the top level).
        what (str): what the file is, named in errors.
        index (dict, optional): a prebuilt :func:`index_json_object` of the same file.
    """

    def __init__(self, path: str, what: str = 'json file', index: Optional[Dict[str, Tuple[int, int]]] = None):
        self.path = path
        self.what = what
        self._index = index_json_object(path, what) if index is None else index
        self._stat = self._file_stat()
        self._fd: Optional[int] = None
        self._fd_pid: Optional[int] = None

    def _file_stat(self) -> Tuple[int, int]:
        st = os.stat(self.path)
        return st.st_size, st.st_mtime_ns

    def _read(self, start: int, end: int) -> bytes:
        if self._fd is None or self._fd_pid != os.getpid():
            if self._file_stat() != self._stat:
                raise RuntimeError(f'{self.what}: {self.path} changed after it was indexed; index it again')
            self._fd = os.open(self.path, os.O_RDONLY)
            self._fd_pid = os.getpid()
        return os.pread(self._fd, end - start, start)

    def __getitem__(self, key: str) -> Any:
        start, end = self._index[key]
        return parse_json_unique(self._read(start, end), f'{self.path}[{json_key(key)}]')

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def value_size(self, key: str) -> int:
        """Bytes of the json text of ``key``'s value."""
        start, end = self._index[key]
        return end - start

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_fd'] = state['_fd_pid'] = None  # each process opens the file itself
        return state

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = self._fd_pid = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.path!r}, {len(self._index)} keys)'
