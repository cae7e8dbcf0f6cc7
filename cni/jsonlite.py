"""json.loads / json.dumps without importing the `json` package: the same C scanner and
encoder (CPython's `_json`), driven the way json/decoder.py and json/encoder.py drive them.

Why: `import json` costs ~8 ms of an exec'd fixipam call on this VM (~40 ms of imports in
all), because json.decoder compiles regular expressions: it imports `re`, which imports
`enum`, `functools`, `collections`, `copyreg`, `re._parser`, `re._compiler`... `_json` itself
is a C extension module (~0.4 ms). The JSON this gives is the json module's, byte for byte
and value for value, because it is the very code json.loads / json.dumps run (for one-shot
dumps without indent json also uses the C encoder): pinned against the json module by
tests/test_jsonlite.py on arbitrary values.

What is not the C code's, mirrored here from json's Python wrapper:
- loads: bytes are decoded as json.detect_encoding says (UTF-8 here; a BOM or a NUL in the
  first two bytes, i.e. UTF-16/32, goes to the json module itself, as does a str starting
  with a BOM (an error) and any type but str/bytes/bytearray (a TypeError)); whitespace
  around the document is " \\t\\n\\r"; NaN, Infinity and -Infinity are read, as json does.
- errors: json.JSONDecodeError (a ValueError) with json's message and position, json
  imported on the error path only: the two top-level errors ("Expecting value", "Extra data")
  are raised here; one found inside the document is raised by the C scanner, which in 3.11
  takes JSONDecodeError from an already imported json.decoder (or fails with a SystemError:
  then the document goes to json.loads, which raises it).
- dumps: json.dumps' defaults (ensure_ascii, allow_nan, check_circular, no skipkeys) with
  `sort_keys` and `separators` as json takes them; an object json cannot encode raises
  json's TypeError ("Object of type X is not JSON serializable").

Without `_json` (another Python implementation) loads/dumps are the json module's.
"""
try:
    import _json
except ImportError:      # another Python: the json module's own loads/dumps (below)
    _json = None  # type: ignore[assignment]

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What the C scanner reads from json.JSONDecoder (json's defaults)."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _not_serializable(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _decode_error(msg: str, doc: str, pos: int) -> ValueError:
    from json import JSONDecodeError
    return JSONDecodeError(msg, doc, pos)


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


if _json is not None:
    # (typeshed wants a make_scanner as the context: the C code reads only the attributes)
    _scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
    _make_encoder, _ascii = _json.make_encoder, _json.encode_basestring_ascii

    def loads(s):
        """json.loads(s) for a str, bytes or bytearray document."""
        if isinstance(s, (bytes, bytearray)):
            # json.detect_encoding: UTF-8 unless a BOM or a NUL among the first two bytes
            if s and (s[0] in b"\x00\xef\xfe\xff" or (len(s) > 1 and not s[1])):
                import json
                return json.loads(s)
            s = s.decode("utf-8", "surrogatepass")
        elif not isinstance(s, str) or s.startswith("\ufeff"):
            import json
            return json.loads(s)    # json's TypeError / "Unexpected UTF-8 BOM" error
        try:
            obj, end = _scan(s, _skip_ws(s, 0))
        except StopIteration as e:
            raise _decode_error("Expecting value", s, e.value) from None
        except SystemError:
            # CPython 3.11's scanner raises its errors with the JSONDecodeError of json.decoder
            # as found in sys.modules, without importing it: before json is imported its errors
            # come out as "returned NULL without setting an exception". json raises the real one.
            import json
            return json.loads(s)
        end = _skip_ws(s, end)
        if end != len(s):
            raise _decode_error("Extra data", s, end)
        return obj

    def dumps(obj, *, sort_keys: bool = False, separators: tuple[str, str] | None = None) -> str:
        """json.dumps(obj, sort_keys=..., separators=...) with json's other defaults."""
        if isinstance(obj, str):
            return _ascii(obj)
        item_sep, key_sep = separators or (", ", ": ")
        encode = _make_encoder({}, _not_serializable, _ascii, None, key_sep, item_sep,
                               sort_keys, False, True)
        return "".join(encode(obj, 0))
else:
    def loads(s):
        import json
        return json.loads(s)

    def dumps(obj, *, sort_keys: bool = False, separators: tuple[str, str] | None = None) -> str:
        import json
        return json.dumps(obj, sort_keys=sort_keys, separators=separators)
