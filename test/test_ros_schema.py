# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
ros_schema: ROS types -> JSON Schema, JSON -> request messages, responses -> JSON.

Schemas are checked field by field and with jsonschema; JSON arguments -> request messages with
precise errors; the grammar-safe schemas go through llama-cpp-python's schema-to-grammar
converter and llama.cpp's GBNF parser.

Types: std_srvs/SetBool, std_srvs/Trigger (empty request), lifecycle_msgs and diagnostic_msgs
(constants), and the test fixtures jobot_ai_msgs/ToolTestCommand (every supported field kind),
ToolTestPose (nested) and ToolTestBlob (an unsupported byte array). No ROS graph needed.
"""
import copy
import json

from br_chat_lifecycle.ros_schema import (ArgumentError, describe_fields, GRAMMAR_MAX_REPEAT,
                                          import_interface, json_to_message, message_schema,
                                          message_to_json, UnsupportedFieldError)
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from jobot_ai_msgs.msg import ToolTestPose
from jobot_ai_msgs.srv import ToolTestBlob, ToolTestCommand
import jsonschema
from lifecycle_msgs.msg import Transition
import pytest
from std_srvs.srv import SetBool, Trigger

Command = ToolTestCommand.Request
POSE = {'type': 'object',
        'properties': {'x': {'type': 'number'}, 'y': {'type': 'number'},
                       'heading': {'type': 'integer', 'enum': [0, 90, 180, 270],
                                   'description': 'int16: one of HEADING_NORTH=0, '
                                                  'HEADING_EAST=90, HEADING_SOUTH=180, '
                                                  'HEADING_WEST=270'}},
        'required': ['x', 'y', 'heading'], 'additionalProperties': False}
POSE_EXACT = copy.deepcopy(POSE)
POSE_EXACT['properties']['y'].update(minimum=-3.4028234663852886e38,
                                     maximum=3.4028234663852886e38)

# Valid arguments for ToolTestCommand; every float is exact in float32 so the round trip is exact.
SAMPLE = {
    'mode': 1, 'level': 'high', 'label': 'sixteen chars ok', 'note': 'free text ✓',
    'long_text': 'x' * 200, 'wide': 'wide ça', 'urgent': True, 'small': -128, 'medium': 65535,
    'count': -2147483648, 'big': -2 ** 63, 'huge': 2 ** 64 - 1, 'speed': 1.5, 'precise': 0.1,
    'target': {'x': 1.25, 'y': -2.5, 'heading': 90},
    'corners': [{'x': 0.0, 'y': 0.0, 'heading': 0}, {'x': 3.0, 'y': 4.0, 'heading': 270}],
    'waypoints': [{'x': 1.0, 'y': 2.0, 'heading': 180}],
    'counts': [1, -2, 3], 'rgb': [0.25, 0.5, 1.0], 'tags': ['a', 'eight ch'],
}


def validator(cls, grammar_safe=False):
    return jsonschema.Draft202012Validator(message_schema(cls, grammar_safe=grammar_safe))


# ============================================================================ std_srvs
def test_setbool_schema_and_validation():
    schema = message_schema(SetBool.Request)
    assert schema == {'type': 'object', 'properties': {'data': {'type': 'boolean'}},
                      'required': ['data'], 'additionalProperties': False}
    assert message_schema(SetBool.Request, grammar_safe=True) == schema
    v = validator(SetBool.Request)
    v.validate({'data': True})
    for bad in ({}, {'data': 1}, {'data': 'true'}, {'data': True, 'extra': 1}, []):
        assert not v.is_valid(bad), bad
    msg = json_to_message(SetBool.Request, {'data': True})
    assert isinstance(msg, SetBool.Request) and msg.data is True
    assert message_to_json(msg) == {'data': True}
    assert describe_fields(SetBool.Request) == 'data (boolean)'


def test_trigger_empty_request():
    schema = message_schema(Trigger.Request)
    assert schema == {'type': 'object', 'properties': {}, 'required': [],
                      'additionalProperties': False}
    v = validator(Trigger.Request)
    v.validate({})
    assert not v.is_valid({'anything': 1})
    assert isinstance(json_to_message(Trigger.Request, {}), Trigger.Request)
    with pytest.raises(ArgumentError, match=r'anything: unknown field \(fields: none\)'):
        json_to_message(Trigger.Request, {'anything': 1})
    assert message_to_json(Trigger.Request()) == {}
    assert message_to_json(Trigger.Response(success=True, message='ok')) == {
        'success': True, 'message': 'ok'}
    assert describe_fields(Trigger.Request) == 'no arguments'


# ============================================================================ ToolTestCommand
def test_command_schema_field_by_field():
    exact = message_schema(Command)
    safe = message_schema(Command, grammar_safe=True)
    fields = list(Command.get_fields_and_field_types())
    for schema in (exact, safe):
        assert schema['type'] == 'object' and schema['additionalProperties'] is False
        assert list(schema['properties']) == fields
        assert schema['required'] == fields
    e, s = exact['properties'], safe['properties']
    # constants as enums: MODE_* (uint8) and LEVEL_* (string), names in the description
    assert e['mode'] == s['mode'] == {
        'type': 'integer', 'enum': [0, 1, 2],
        'description': 'uint8: one of MODE_IDLE=0, MODE_GO=1, MODE_STOP=2'}
    assert e['level'] == s['level'] == {
        'type': 'string', 'enum': ['low', 'high'],
        'description': "string: one of LEVEL_LOW='low', LEVEL_HIGH='high'"}
    # strings: bounded within the grammar cap, unbounded, bounded above the cap, wide
    assert e['label'] == s['label'] == {'type': 'string', 'maxLength': 16}
    assert e['note'] == s['note'] == {'type': 'string'}
    assert e['long_text'] == {'type': 'string', 'maxLength': 200}
    assert s['long_text'] == {'type': 'string',
                              'description': 'string<200>: at most 200 characters'}
    assert e['wide'] == s['wide'] == {'type': 'string'}
    assert e['urgent'] == s['urgent'] == {'type': 'boolean'}
    # integers: the type's range; 64-bit ranges only in the exact schema
    assert e['small'] == s['small'] == {'type': 'integer', 'minimum': -128, 'maximum': 127}
    assert e['medium'] == s['medium'] == {'type': 'integer', 'minimum': 0, 'maximum': 65535}
    assert e['count'] == s['count'] == {'type': 'integer', 'minimum': -2 ** 31,
                                        'maximum': 2 ** 31 - 1}
    assert e['big'] == {'type': 'integer', 'minimum': -2 ** 63, 'maximum': 2 ** 63 - 1}
    assert s['big'] == {'type': 'integer',
                        'description': 'int64: -9223372036854775808..9223372036854775807'}
    assert e['huge'] == {'type': 'integer', 'minimum': 0, 'maximum': 2 ** 64 - 1}
    assert s['huge'] == {'type': 'integer', 'description': 'uint64: 0..18446744073709551615'}
    # floats: float32 range only in the exact schema
    assert e['speed'] == {'type': 'number', 'minimum': -3.4028234663852886e38,
                          'maximum': 3.4028234663852886e38}
    assert s['speed'] == {'type': 'number'}
    assert e['precise'] == s['precise'] == {'type': 'number'}
    # nested message, recursively (its HEADING_* constants become an enum)
    assert e['target'] == POSE_EXACT and s['target'] == POSE
    # fixed array, bounded and unbounded sequences
    assert s['corners'] == {'type': 'array', 'items': POSE, 'minItems': 2, 'maxItems': 2}
    assert e['corners'] == {'type': 'array', 'items': POSE_EXACT, 'minItems': 2, 'maxItems': 2}
    assert s['waypoints'] == {'type': 'array', 'items': POSE, 'maxItems': 3}
    assert e['counts'] == s['counts'] == {
        'type': 'array', 'items': {'type': 'integer', 'minimum': -2 ** 31,
                                   'maximum': 2 ** 31 - 1}}
    assert e['rgb'] == s['rgb'] == {'type': 'array', 'items': {'type': 'number'},
                                    'minItems': 3, 'maxItems': 3}
    assert e['tags'] == s['tags'] == {'type': 'array', 'items': {'type': 'string',
                                                                 'maxLength': 8},
                                      'maxItems': 4}


def test_sample_arguments_validate_and_round_trip():
    validator(Command).validate(SAMPLE)
    validator(Command, grammar_safe=True).validate(SAMPLE)
    msg = json_to_message(Command, SAMPLE)
    assert isinstance(msg, Command)
    assert isinstance(msg.target, ToolTestPose) and msg.target.heading == 90
    assert msg.mode == 1 and msg.huge == 2 ** 64 - 1 and msg.big == -2 ** 63
    back = message_to_json(msg)
    assert back == SAMPLE
    assert json.loads(json.dumps(back, allow_nan=False)) == SAMPLE   # plain JSON types only


# (change to SAMPLE, field path in the error, fragment of the error, valid in the grammar-safe
# schema: the bounds it drops on purpose)
INVALID = [
    ({'mode': 3}, 'mode', 'must be one of MODE_IDLE=0, MODE_GO=1, MODE_STOP=2', False),
    ({'level': 'medium'}, 'level', "must be one of LEVEL_LOW='low'", False),
    ({'label': 'x' * 17}, 'label', 'at most 16 characters (got 17)', False),
    ({'long_text': 'x' * 201}, 'long_text', 'at most 200 characters (got 201)', True),
    ({'urgent': 'yes'}, 'urgent', 'expected true or false, got a string', False),
    ({'small': 128}, 'small', 'must be in [-128, 127] (int8), got 128', False),
    ({'medium': -1}, 'medium', 'must be in [0, 65535] (uint16), got -1', False),
    ({'count': True}, 'count', 'expected an integer (int32), got a boolean', False),
    ({'count': 1.5}, 'count', 'expected an integer (int32), got a number', False),
    ({'big': 2 ** 63}, 'big', 'must be in [-9223372036854775808, 9223372036854775807]', True),
    ({'huge': -1}, 'huge', 'must be in [0, 18446744073709551615] (uint64), got -1', True),
    ({'speed': 1e39}, 'speed', 'float32', True),
    ({'precise': 'fast'}, 'precise', 'expected a number, got a string', False),
    ({'target': {'x': 1.0, 'y': 2.0}}, 'target.heading', 'missing', False),
    ({'target': {'x': 1.0, 'y': 2.0, 'heading': 0, 'z': 0}}, 'target.z', 'unknown field',
     False),
    ({'target': [1, 2]}, 'target', 'expected a JSON object, got an array', False),
    ({'corners': [{'x': 0.0, 'y': 0.0, 'heading': 0}]}, 'corners',
     'must have exactly 2 items (got 1)', False),
    ({'waypoints': [{'x': 0.0, 'y': 0.0, 'heading': 0}] * 4}, 'waypoints',
     'must have at most 3 items (got 4)', False),
    ({'waypoints': [{'x': 0.0, 'y': 0.0, 'heading': 0}, {'x': 0.0, 'y': 0.0, 'heading': 45}]},
     'waypoints[1].heading', 'must be one of HEADING_NORTH=0', False),
    ({'counts': [1, 'two']}, 'counts[1]', 'expected an integer (int32), got a string', False),
    ({'counts': 5}, 'counts', 'expected a JSON array, got an integer', False),
    ({'rgb': [0.0, 1.0]}, 'rgb', 'must have exactly 3 items (got 2)', False),
    ({'tags': ['a'] * 5}, 'tags', 'must have at most 4 items (got 5)', False),
    ({'tags': ['nine char']}, 'tags[0]', 'at most 8 characters (got 9)', False),
]


@pytest.mark.parametrize('change,path,fragment,grammar_safe_accepts', INVALID,
                         ids=[p for _, p, _, _ in INVALID])
def test_invalid_arguments_name_the_field_and_the_limit(change, path, fragment,
                                                        grammar_safe_accepts):
    args = dict(copy.deepcopy(SAMPLE), **change)
    assert not validator(Command).is_valid(args)
    assert validator(Command, grammar_safe=True).is_valid(args) == grammar_safe_accepts
    with pytest.raises(ArgumentError) as info:
        json_to_message(Command, args)
    assert info.value.path == path
    assert str(info.value).startswith(f'{path}: ')
    assert fragment in str(info.value)


def test_missing_and_unknown_top_level_fields():
    args = dict(SAMPLE)
    del args['note']
    with pytest.raises(ArgumentError, match=r'^note: missing \(every field is required\)$'):
        json_to_message(Command, args)
    with pytest.raises(ArgumentError, match=r'^colour: unknown field \(fields: mode, level'):
        json_to_message(Command, dict(SAMPLE, colour='red'))
    with pytest.raises(ArgumentError, match=r'^arguments: expected a JSON object, got null$'):
        json_to_message(Command, None)


# ============================================================================ unsupported
def test_byte_array_field_is_refused_with_its_path():
    with pytest.raises(UnsupportedFieldError) as info:
        message_schema(ToolTestBlob.Request)
    assert info.value.path == 'payload'
    assert "field 'payload'" in str(info.value) and 'byte' in str(info.value)


def test_nesting_deeper_than_max_depth_is_refused_with_its_path():
    with pytest.raises(UnsupportedFieldError, match=r"field 'target': nested more than 0"):
        message_schema(Command, max_depth=0)
    assert message_schema(Command, max_depth=1)['properties']['target'] == POSE_EXACT
    # DiagnosticArray: header.stamp is the second level; status[].values[] too
    with pytest.raises(UnsupportedFieldError) as info:
        message_schema(DiagnosticArray, max_depth=1)
    assert info.value.path == 'header.stamp'
    schema = message_schema(DiagnosticArray, max_depth=2)
    assert schema['properties']['header']['properties']['stamp']['required'] == ['sec',
                                                                                 'nanosec']


def test_import_interface_errors():
    assert import_interface('std_srvs/srv/SetBool') is SetBool
    for bad, fragment in (('std_srvs/SetBool', 'expected "package/srv/Name"'),
                          ('no_such_pkg/srv/X', 'cannot import no_such_pkg.srv'),
                          ('std_srvs/srv/NoSuch', 'std_srvs.srv has no NoSuch')):
        with pytest.raises(ValueError, match=fragment):
            import_interface(bad)


# ============================================================================ constants
def test_single_field_rule_makes_unprefixed_constants_an_enum():
    # lifecycle_msgs/Transition: one integer field (id), TRANSITION_* constants
    tid = message_schema(Transition)['properties']['id']
    assert tid['enum'][:4] == [0, 1, 2, 3] and 97 in tid['enum']
    assert 'TRANSITION_CONFIGURE=1' in tid['description']
    # diagnostic_msgs/DiagnosticStatus: byte level with byte constants OK..STALE
    level = message_schema(DiagnosticStatus)['properties']['level']
    assert level == {'type': 'integer', 'enum': [0, 1, 2, 3],
                     'description': 'octet: one of OK=0, WARN=1, ERROR=2, STALE=3'}
    msg = json_to_message(DiagnosticStatus, {'level': 2, 'name': 'n', 'message': '',
                                             'hardware_id': '', 'values': []})
    assert msg.level == b'\x02'
    with pytest.raises(ArgumentError, match='level: must be one of OK=0'):
        json_to_message(DiagnosticStatus, {'level': 7, 'name': 'n', 'message': '',
                                           'hardware_id': '', 'values': []})


def test_fields_without_a_matching_convention_get_no_enum():
    props = message_schema(Command)['properties']
    for name in ('small', 'medium', 'count', 'label', 'note'):
        assert 'enum' not in props[name], name


# ============================================================================ responses
def test_response_to_json_handles_bytes_arrays_and_non_finite_floats():
    res = ToolTestCommand.Response(success=True, message='done', code=b'\x07',
                                   blob=[b'\x01', b'\xff'])
    res.reached.x, res.reached.heading = 2.5, 180
    res.pair = [0.5, -1.0]                      # numpy float32 array inside the message
    res.values = [float('nan'), float('inf'), 1.5]
    out = message_to_json(res)
    assert out == {'success': True, 'message': 'done',
                   'reached': {'x': 2.5, 'y': 0.0, 'heading': 180}, 'code': 7,
                   'blob': [1, 255], 'pair': [0.5, -1.0], 'values': ['nan', 'inf', 1.5]}
    json.dumps(out, allow_nan=False)


# ============================================================================ grammar
def _grammar(schema) -> str:
    from br_chat_lifecycle.grammars import json_grammar
    return json_grammar(json.dumps(schema))


@pytest.mark.parametrize('cls', [SetBool.Request, Trigger.Request, Command, DiagnosticStatus],
                         ids=['SetBool', 'Trigger', 'ToolTestCommand', 'DiagnosticStatus'])
def test_grammar_safe_schemas_become_small_grammars_llama_cpp_parses(cls):
    from br_chat_lifecycle.grammars import _nesting, check_gbnf
    safe = _grammar(message_schema(cls, grammar_safe=True))
    check_gbnf(safe)                                     # llama.cpp's own GBNF parser
    print(f'{cls.__name__}: grammar-safe GBNF {len(safe)} chars, nesting {_nesting(safe)}')
    assert _nesting(safe) <= GRAMMAR_MAX_REPEAT + 8
    if cls is Command:   # the exact schema's maxLength 200 would nest 200 groups deep
        exact = _grammar(message_schema(cls))
        print(f'{cls.__name__}: exact-schema GBNF {len(exact)} chars, nesting {_nesting(exact)}')
        assert _nesting(exact) >= 200 > _nesting(safe)
