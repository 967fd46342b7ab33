# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
ROS message types <-> JSON Schema and JSON values (for exposing ROS services as LLM tools).

Three operations on the generated Python class of a message (or of a service's Request):

  message_schema(cls)        JSON Schema of the message: every field required, no other
                             properties; ``grammar_safe=True`` gives the variant handed to the
                             LLM (see "Grammar-safe schema" below), the default is the exact one
                             used to validate arguments.
  json_to_message(cls, obj)  a message built from JSON arguments; a wrong value raises
                             ArgumentError naming the field path and the limit.
  message_to_json(msg)       any message (a service's Response) as a JSON-safe dict.

The type information comes from the class itself: ``get_fields_and_field_types()`` for names
and ``SLOT_TYPES`` (rosidl_parser.definition types) for the exact types, bounds and nesting.

Mapping (field type -> JSON Schema):
  bool                      boolean
  int8..int64, uint8..64    integer with minimum/maximum of the type
  byte (octet)              integer 0..255 (set as a one-byte ``bytes``)
  float32 / float64         number (float32 also checked against +-3.4028235e38)
  string / wstring          string; ``string<=N`` adds maxLength N
  T[N]                      array, minItems = maxItems = N
  T[<=N] / T[]              array, maxItems N / unbounded
  nested message            object (recursively), at most ``max_depth`` levels of nesting
Unsupported (UnsupportedFieldError naming the field path): arrays/sequences of byte (binary
blobs an LLM should not invent), char/wchar (IDL-only single characters), and nesting deeper
than ``max_depth`` levels of nested messages (default 4; geometry_msgs/PoseStamped uses 2:
header, then header.stamp).

Constants as enums (a heuristic, kept small and predictable; scalar fields only):
  1. prefix rule: the constants named ``<FIELD>_*`` (field name upper-cased, e.g. MODE_IDLE
     for ``mode``) whose values fit the field's type are its allowed values;
  2. single-field rule: otherwise, when the message has exactly ONE integer field (or ONE
     string field) left without constants, and at least two integer (string) constants are not
     claimed by rule 1, all of those constants are its allowed values if they all fit it.
  Bool and float constants are never used. The enum is ``enum`` in the schema and the names
  are listed in the field's ``description`` (``MODE_IDLE=0, MODE_GO=1``). A constant that is a
  limit rather than a value (``uint8 MAX_SPEED=10`` next to ``uint8 speed``) matches neither
  rule on its own (rule 2 needs two constants); name enum constants FIELD_* to be explicit.

Grammar-safe schema: llama-cpp-python's json_schema_to_gbnf (0.3.x) ignores minimum/maximum,
expands maxLength/maxItems N into N nested optional rules, and fixed arrays into N copies. So
the variant sent to the LLM keeps integer ranges only up to 32 bits (int64/uint64 become a
plain "integer"), drops the float32 range, and drops maxLength / maxItems / fixed sizes above
GRAMMAR_MAX_REPEAT (32), noting the dropped bound in the field's description. Arguments are
always validated against the exact schema (jsonschema) and again by json_to_message before any
service is called, so a value the grammar let through is refused with a precise error.

Hand-written: the converters. rosidl_runtime_py (set_message_fields, message_to_ordereddict)
has no PyPI wheel for the ROS 2 wheels this project installs, and its errors do not name the
field path or the limit; the mapping above is small and shared by the schema and the converter.
"""
from dataclasses import dataclass, field
from functools import lru_cache
import importlib
import math
from typing import Any, Dict, List, Optional, Tuple

from rosidl_parser import definition as idl

MAX_DEPTH = 4
GRAMMAR_MAX_REPEAT = 32
FLOAT32_MAX = 3.4028234663852886e38

_INT_RANGES = {
    'int8': (-2 ** 7, 2 ** 7 - 1), 'int16': (-2 ** 15, 2 ** 15 - 1),
    'int32': (-2 ** 31, 2 ** 31 - 1), 'int64': (-2 ** 63, 2 ** 63 - 1),
    'uint8': (0, 2 ** 8 - 1), 'uint16': (0, 2 ** 16 - 1), 'uint32': (0, 2 ** 32 - 1),
    'uint64': (0, 2 ** 64 - 1),
    # IDL spellings (.idl files; .msg files use the explicit names above)
    'short': (-2 ** 15, 2 ** 15 - 1), 'long': (-2 ** 31, 2 ** 31 - 1),
    'long long': (-2 ** 63, 2 ** 63 - 1), 'unsigned short': (0, 2 ** 16 - 1),
    'unsigned long': (0, 2 ** 32 - 1), 'unsigned long long': (0, 2 ** 64 - 1),
    'octet': (0, 255),
}
_WIDE_INTS = {'int64', 'uint64', 'long long', 'unsigned long long'}


class UnsupportedFieldError(ValueError):
    """A field whose type has no JSON representation here; ``path`` names it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f'field {path!r}: {reason}')
        self.path = path


class ArgumentError(ValueError):
    """JSON arguments that do not fit the message; ``path`` names the field."""

    def __init__(self, path: str, reason: str):
        super().__init__(f'{path or "arguments"}: {reason}')
        self.path = path


@dataclass
class FieldSpec:
    """What one field accepts (built once per message class, see ``message_fields``)."""

    name: str
    kind: str                       # bool | int | float | string | message
    ros_type: str                   # as get_fields_and_field_types() spells it
    value_type: str = ''            # of one value (an array's item), e.g. int32
    lo: Optional[int] = None        # int range
    hi: Optional[int] = None
    float32: bool = False
    octet: bool = False             # byte: an int set as bytes([v])
    wide: bool = False              # int64/uint64: no range in the grammar-safe schema
    max_len: Optional[int] = None   # bounded string
    array: Optional[str] = None     # None | 'fixed' | 'bounded' | 'unbounded'
    size: Optional[int] = None      # fixed size / maximum size
    enum: List[Tuple[str, Any]] = field(default_factory=list)
    msg_class: Any = None           # nested message class
    fields: List['FieldSpec'] = field(default_factory=list)   # nested message fields


def import_interface(type_name: str):
    """``pkg/srv/Name`` (or ``pkg/msg/Name``, ``pkg/action/Name``) -> the generated class."""
    parts = type_name.split('/')
    if len(parts) != 3 or not all(parts):
        raise ValueError(f'interface type {type_name!r}: expected "package/srv/Name"')
    package, kind, name = parts
    try:
        module = importlib.import_module(f'{package}.{kind}')
    except ImportError as e:
        raise ValueError(f'interface type {type_name!r}: cannot import {package}.{kind} '
                         f'({e}); is the package built and sourced?') from e
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f'interface type {type_name!r}: {package}.{kind} has no {name}')


def type_name_of(cls) -> str:
    """``pkg/msg/Name`` of a generated message class (``pkg/srv/Name_Request`` for requests)."""
    module = cls.__module__.split('.')
    return f'{module[0]}/{module[1]}/{cls.__name__}'


def _constants(cls) -> List[Tuple[str, Any]]:
    """
    Return (name, value) of the message's constants, in definition order.

    The generated metaclass exposes each as an upper-case property (``X__DEFAULT`` properties
    are field defaults, not constants). A byte constant's value becomes an int.
    """
    out = []
    for name, attr in vars(type(cls)).items():
        if isinstance(attr, property) and name.isupper() and not name.endswith('__DEFAULT'):
            value = getattr(cls, name)
            if isinstance(value, bytes) and len(value) == 1:   # a byte constant
                value = value[0]
            out.append((name, value))
    return out


def _import_nested(t: 'idl.NamespacedType'):
    return import_interface('/'.join((*t.namespaces, t.name)))


def _fits(spec: FieldSpec, value) -> bool:
    if spec.kind == 'int':
        return (isinstance(value, int) and not isinstance(value, bool)
                and spec.lo <= value <= spec.hi)
    if spec.kind == 'string':
        return isinstance(value, str) and (spec.max_len is None or len(value) <= spec.max_len)
    return False


def _basic_spec(name: str, ros_type: str, tn: str, path: str) -> FieldSpec:
    if tn == idl.BOOLEAN_TYPE:
        return FieldSpec(name, 'bool', ros_type, value_type=tn)
    if tn in _INT_RANGES:
        lo, hi = _INT_RANGES[tn]
        return FieldSpec(name, 'int', ros_type, value_type=tn, lo=lo, hi=hi,
                         octet=tn == idl.OCTET_TYPE, wide=tn in _WIDE_INTS)
    if tn in idl.FLOATING_POINT_TYPES:
        return FieldSpec(name, 'float', ros_type, value_type=tn, float32=tn == 'float')
    raise UnsupportedFieldError(path, f'type {tn} (single characters) is not supported')


def _scalar_spec(name: str, ros_type: str, t, path: str, depth: int, max_depth: int):
    if isinstance(t, idl.BasicType):
        return _basic_spec(name, ros_type, t.typename, path)
    if isinstance(t, idl.AbstractGenericString):
        max_len = t.maximum_size if t.has_maximum_size() else None
        if isinstance(max_len, str):   # a bound given by a constant name in an .idl file
            raise UnsupportedFieldError(path, f'string bound {max_len!r} is not a number')
        return FieldSpec(name, 'string', ros_type, value_type='string', max_len=max_len)
    if isinstance(t, idl.NamespacedType):
        type_name = '/'.join((*t.namespaces, t.name))
        if depth >= max_depth:
            raise UnsupportedFieldError(
                path, f'nested more than {max_depth} message levels deep ({type_name})')
        cls = _import_nested(t)
        return FieldSpec(name, 'message', ros_type, value_type=type_name, msg_class=cls,
                         fields=_fields(cls, path + '.', depth + 1, max_depth))
    raise UnsupportedFieldError(path, f'type {type(t).__name__} is not supported')


def _fields(cls, prefix: str, depth: int, max_depth: int) -> List[FieldSpec]:
    specs = []
    for (name, ros_type), t in zip(cls.get_fields_and_field_types().items(), cls.SLOT_TYPES):
        path = prefix + name
        if isinstance(t, idl.AbstractNestedType):
            vt = t.value_type
            if isinstance(vt, idl.BasicType) and vt.typename == idl.OCTET_TYPE:
                raise UnsupportedFieldError(
                    path, f'{ros_type}: arrays of byte (binary data) are not supported')
            spec = _scalar_spec(name, ros_type, vt, path + '[]', depth, max_depth)
            if isinstance(t, idl.Array):
                spec.array, spec.size = 'fixed', t.size
            elif isinstance(t, idl.BoundedSequence):
                spec.array, spec.size = 'bounded', t.maximum_size
            else:
                spec.array = 'unbounded'
        else:
            spec = _scalar_spec(name, ros_type, t, path, depth, max_depth)
        spec.ros_type = ros_type
        specs.append(spec)
    _attach_constants(cls, specs)
    return specs


def _attach_constants(cls, specs: List[FieldSpec]) -> None:
    constants = _constants(cls)
    if not constants:
        return
    claimed = set()
    scalars = [s for s in specs if s.array is None and s.kind in ('int', 'string')]
    for spec in scalars:                                     # rule 1: FIELD_* constants
        prefix = spec.name.upper() + '_'
        group = [(n, v) for n, v in constants if n.startswith(prefix) and _fits(spec, v)]
        if group:
            spec.enum = group
            claimed.update(n for n, _ in group)
    for kind, py_type in (('int', int), ('string', str)):   # rule 2: the one field of a kind
        free = [s for s in scalars if s.kind == kind and not s.enum]
        if len([s for s in scalars if s.kind == kind]) != 1 or len(free) != 1:
            continue
        group = [(n, v) for n, v in constants if n not in claimed
                 and isinstance(v, py_type) and not isinstance(v, bool)]
        if len(group) >= 2 and all(_fits(free[0], v) for _, v in group):
            free[0].enum = group


@lru_cache(maxsize=256)
def message_fields(cls, max_depth: int = MAX_DEPTH) -> Tuple[FieldSpec, ...]:
    """
    Return the field specs of a message class (cached).

    Raises UnsupportedFieldError with the path from the message's top level, e.g.
    ``waypoints[].x``.
    """
    return tuple(_fields(cls, '', 0, max_depth))


# ================================================================ JSON Schema
def _value_schema(spec: FieldSpec, grammar_safe: bool, notes: List[str]) -> Dict[str, Any]:
    if spec.kind == 'bool':
        return {'type': 'boolean'}
    if spec.kind == 'int':
        schema = {'type': 'integer'}
        if spec.enum:                   # the enum implies the range
            schema['enum'] = [v for _, v in spec.enum]
        elif not (grammar_safe and spec.wide):
            schema.update(minimum=spec.lo, maximum=spec.hi)
        elif spec.array is None:
            notes.append(f'{spec.lo}..{spec.hi}')
        return schema
    if spec.kind == 'float':
        schema = {'type': 'number'}
        if spec.float32 and not grammar_safe:
            schema.update(minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX)
        return schema
    if spec.kind == 'string':
        schema = {'type': 'string'}
        if spec.max_len is not None:
            if grammar_safe and spec.max_len > GRAMMAR_MAX_REPEAT:
                notes.append(f'at most {spec.max_len} characters')
            else:
                schema['maxLength'] = spec.max_len
        if spec.enum:
            schema['enum'] = [v for _, v in spec.enum]
        return schema
    return _object_schema(spec.fields, grammar_safe)


def _field_schema(spec: FieldSpec, grammar_safe: bool) -> Dict[str, Any]:
    notes: List[str] = []
    schema = _value_schema(spec, grammar_safe, notes)
    if spec.array is not None:
        schema = {'type': 'array', 'items': schema}
        over = grammar_safe and spec.size is not None and spec.size > GRAMMAR_MAX_REPEAT
        if spec.array == 'fixed':
            if over:
                notes.append(f'exactly {spec.size} items')
            else:
                schema.update(minItems=spec.size, maxItems=spec.size)
        elif spec.array == 'bounded':
            if over:
                notes.append(f'at most {spec.size} items')
            else:
                schema['maxItems'] = spec.size
    if spec.enum:
        notes.append('one of ' + ', '.join(f'{n}={v!r}' if isinstance(v, str) else f'{n}={v}'
                                           for n, v in spec.enum))
    if notes:
        schema['description'] = f'{spec.ros_type}: ' + '; '.join(notes)
    return schema


def _object_schema(specs, grammar_safe: bool) -> Dict[str, Any]:
    return {
        'type': 'object',
        'properties': {s.name: _field_schema(s, grammar_safe) for s in specs},
        'required': [s.name for s in specs],
        'additionalProperties': False,
    }


def message_schema(cls, grammar_safe: bool = False, max_depth: int = MAX_DEPTH) -> dict:
    """JSON Schema of a message class (for a service: pass ``Srv.Request``)."""
    return _object_schema(message_fields(cls, max_depth), grammar_safe)


def describe_fields(cls, max_depth: int = MAX_DEPTH) -> str:
    """``on (bool), room (string)`` -- a one-line summary for generated tool descriptions."""
    specs = message_fields(cls, max_depth)
    return ', '.join(f'{s.name} ({s.ros_type})' for s in specs) or 'no arguments'


# ================================================================ JSON -> message
def json_to_message(cls, data, max_depth: int = MAX_DEPTH, _path: str = ''):
    """
    Build a ``cls`` message from JSON ``data`` (a dict with exactly the message's fields).

    Strict: missing or unknown fields, wrong JSON types, out-of-range numbers, too long strings
    or arrays, and values outside a constant enum raise ArgumentError naming the field path.
    """
    return _build(cls, message_fields(cls, max_depth), data, _path)


def _build(cls, specs, data, path: str):
    if not isinstance(data, dict):
        raise ArgumentError(path, f'expected a JSON object, got {_json_type(data)}')
    names = [s.name for s in specs]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ArgumentError(_join(path, unknown[0]),
                            f'unknown field (fields: {", ".join(names) or "none"})')
    missing = [n for n in names if n not in data]
    if missing:
        raise ArgumentError(_join(path, missing[0]), 'missing (every field is required)')
    msg = cls()
    for spec in specs:
        fpath = _join(path, spec.name)
        value = data[spec.name]
        if spec.array is None:
            converted = _convert(spec, value, fpath)
        else:
            if not isinstance(value, list):
                raise ArgumentError(fpath, f'expected a JSON array, got {_json_type(value)}')
            if spec.array == 'fixed' and len(value) != spec.size:
                raise ArgumentError(fpath, f'must have exactly {spec.size} items '
                                           f'(got {len(value)})')
            if spec.array == 'bounded' and len(value) > spec.size:
                raise ArgumentError(fpath, f'must have at most {spec.size} items '
                                           f'(got {len(value)})')
            converted = [_convert(spec, v, f'{fpath}[{i}]') for i, v in enumerate(value)]
        try:
            setattr(msg, spec.name, converted)
        except (AssertionError, TypeError, ValueError) as e:  # the generated setters' checks
            raise ArgumentError(fpath, f'rejected by the message class: {e}') from e
    return msg


def _convert(spec: FieldSpec, value, path: str):
    if spec.kind == 'bool':
        if not isinstance(value, bool):
            raise ArgumentError(path, f'expected true or false, got {_json_type(value)}')
        return value
    if spec.kind == 'int':
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArgumentError(path, f'expected an integer ({spec.value_type}), got '
                                      f'{_json_type(value)}')
        if not spec.lo <= value <= spec.hi:
            raise ArgumentError(path, f'must be in [{spec.lo}, {spec.hi}] ({spec.value_type}), '
                                      f'got {value}')
        _check_enum(spec, value, path)
        return bytes([value]) if spec.octet else value
    if spec.kind == 'float':
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ArgumentError(path, f'expected a number, got {_json_type(value)}')
        value = float(value)
        if not math.isfinite(value):
            raise ArgumentError(path, f'must be a finite number, got {value}')
        if spec.float32 and abs(value) > FLOAT32_MAX:
            raise ArgumentError(path, f'must be within +-{FLOAT32_MAX:.7g} (float32), '
                                      f'got {value:g}')
        return value
    if spec.kind == 'string':
        if not isinstance(value, str):
            raise ArgumentError(path, f'expected a string, got {_json_type(value)}')
        if spec.max_len is not None and len(value) > spec.max_len:
            raise ArgumentError(path, f'must be at most {spec.max_len} characters '
                                      f'(got {len(value)})')
        _check_enum(spec, value, path)
        return value
    return _build(spec.msg_class, spec.fields, value, path)


def _check_enum(spec: FieldSpec, value, path: str) -> None:
    if spec.enum and value not in [v for _, v in spec.enum]:
        allowed = ', '.join(f'{n}={v!r}' for n, v in spec.enum)
        raise ArgumentError(path, f'must be one of {allowed} (got {value!r})')


def _join(path: str, name: str) -> str:
    return f'{path}.{name}' if path else name


def _json_type(value) -> str:
    if value is None:
        return 'null'
    return {bool: 'a boolean', int: 'an integer', float: 'a number', str: 'a string',
            list: 'an array', dict: 'an object'}.get(type(value), type(value).__name__)


# ================================================================ message -> JSON
def message_to_json(msg) -> Dict[str, Any]:
    """
    Return every field of ``msg`` as JSON-safe values.

    Nested messages -> objects, arrays (lists, numpy arrays, array.array, bytes) -> lists,
    byte -> integer, char -> string, and a non-finite float -> the string "nan", "inf" or
    "-inf" (JSON has no such numbers).
    """
    cls = type(msg)
    return {name: _to_json(getattr(msg, name), t)
            for name, t in zip(cls.get_fields_and_field_types(), cls.SLOT_TYPES)}


def _to_json(value, t):
    if isinstance(t, idl.AbstractNestedType):
        return [_to_json(v, t.value_type) for v in value]  # iterating bytes yields ints
    if isinstance(t, idl.NamespacedType):
        return message_to_json(value)
    if isinstance(value, (bytes, bytearray)):   # a byte field holds a one-byte bytes
        return value[0]
    if hasattr(value, 'item'):                  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
