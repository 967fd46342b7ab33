# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
ROS services as LLM tools (executable ``tool_bridge``): instruction -> LLM -> service calls.

A lifecycle node between a user and the robot's services:

  configure   for each name in ``services`` (exact ROS names, never patterns): wait (at most
              ``discovery_timeout_s``) for it on the graph, read its type, import it, build the
              tool: name from the service name (``/robot/set_light`` -> ``set_light``; names
              that collide keep more of the path: ``robot_a_set_light``), JSON Schema of the
              request (ros_schema), description from ``descriptions`` or generated from the
              fields. A missing service, a type that cannot be imported or a request field with
              no JSON form fails the transition with a message naming it.
  activate    the Instruct service (``instruct_service_name``) answers; while inactive it
              refuses with success=false.
  deactivate  an instruction in progress stops before its next service call (the rest are
              reported "skipped"); cleanup destroys the service and the clients.

An instruction (jobot_ai_msgs/srv/Instruct) is sent to ``chat_service`` (LLMChat) with
``tools_json`` (OpenAI-style tool list) and ``tool_choice``. When the reply is tool calls
(``tool_calls_json``), ``execute_tool_calls`` runs them:
  * all calls are checked first: a name that is not one of the tools (only services listed in
    ``services`` are tools) or arguments that are not valid for the tool's request type
    (jsonschema against the exact schema, then ros_schema.json_to_message) refuse the WHOLE
    batch: nothing is executed ("invalid" for the bad call, "skipped" for the others);
  * more than ``max_tool_calls`` calls are refused the same way;
  * ``dry_run``: nothing is executed, every call is reported "dry_run";
  * otherwise the calls run one after the other, each bounded by ``call_timeout_s``; a call
    that fails (service gone: "unavailable", no response: "timeout", an exception: "failed")
    is reported, never retried, and the calls after it are "skipped" (a robot should not go on
    with a plan whose previous step failed).
With ``answer_after_tools`` the chat service is asked once more (tool_choice "none") with the
instruction and the results, for a reply to speak; otherwise the reply is a short summary.
Instructions are handled one at a time, in arrival order.

Hand-written: tool naming, the call loop and its reporting (the policy above); JSON Schema
validation is jsonschema's, the ROS <-> JSON mapping is ros_schema's.
"""
from dataclasses import dataclass, field
import json
import re
import threading
import time
import traceback
from typing import Any, Dict, List, Optional, Sequence, Tuple

from jobot_ai_msgs.srv import Instruct, LLMChat
import jsonschema
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.validate_full_topic_name import validate_full_topic_name

from . import node_main
from .ros_schema import (ArgumentError, describe_fields, import_interface, json_to_message,
                         message_schema, message_to_json, UnsupportedFieldError)

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
TOOL_NAME_RE = re.compile(r'^[A-Za-z0-9_-]{1,64}$')   # what OpenAI-style tool names allow
REPLY_GRACE_S = 0.2            # let rclpy send a reply before the service is destroyed
FOLLOW_UP_PROMPT = (
    'The user asked: {instruction}\n'
    'You called these robot services; the results (JSON) are:\n{results}\n'
    'Tell the user in one or two short sentences what was done, and what failed if anything.')


# ============================================================================ parameters
@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    check: Optional[Any] = None    # value -> error text or None
    when: str = 'configure'        # 'configure' | 'live' (read for every instruction)


def _positive(v):
    return None if v > 0 else f'must be > 0 (got {v})'


def _non_negative(v):
    return None if v >= 0 else f'must be >= 0 (got {v})'


def _ros_name(v):
    return None if v.strip() and ' ' not in v else f'must be a non-empty ROS name (got {v!r})'


def _tool_choice(v):
    return None if TOOL_NAME_RE.match(v) else (
        f'must be auto, none, required or a tool name (got {v!r})')


def _services(v):
    bad = [s for s in v if not s.strip() or re.search(r'[^A-Za-z0-9_/~{}]', s.strip())]
    return None if not bad else (
        f'must be exact ROS service names (letters, digits, _, /, ~; no wildcards); '
        f'not valid: {bad}')


PARAMS: Sequence[Param] = (
    Param('services', [],
          'Exact names of the ROS services to offer as tools (relative names resolve in this '
          "node's namespace; no wildcards). Only these can ever be called.", _services),
    Param('descriptions', [],
          'Optional tool descriptions, one entry "SERVICE: text" per service (SERVICE as '
          'written in services, or its resolved name). Services without one get a generated '
          'description naming the service and its fields.'),
    Param('chat_service', 'chat_service', 'The LLMChat service that chooses the tool calls.',
          _ros_name),
    Param('instruct_service_name', '~/instruct', 'Name of the Instruct service this node '
          'serves.', _ros_name),
    Param('discovery_timeout_s', 10.0,
          'How long configure waits for every service in services to appear on the graph.',
          _non_negative),
    Param('call_timeout_s', 10.0,
          'Bound on one service call (waiting for the service + its response). A call without '
          'a response by then is reported "timeout" and not retried.', _positive, 'live'),
    Param('chat_timeout_s', 120.0, 'Bound on one request to chat_service.', _positive, 'live'),
    Param('max_tool_calls', 8,
          'Most calls executed for one instruction; a reply with more is refused whole.',
          _positive, 'live'),
    Param('answer_after_tools', False,
          'true: after the calls, ask chat_service once more (with the results) for the '
          'reply; false: the reply is a short summary of the calls.', when='live'),
    Param('dry_run', False,
          'true: validate and report the calls the model made, execute none.', when='live'),
    Param('tool_choice', 'auto',
          'Sent as LLMChat tool_choice: auto (text or calls), none, required, or a tool name.',
          _tool_choice, 'live'),
)
BY_NAME = {p.name: p for p in PARAMS}


def check_value(p: Param, value) -> Optional[str]:
    """Error text for ``value`` of parameter ``p`` (type and range), or None."""
    if isinstance(p.default, bool):
        ok = isinstance(value, bool)
    elif isinstance(p.default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(p.default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(p.default, list):
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        return f'{p.name}: expected {type(p.default).__name__}, got {type(value).__name__} ' \
               f'{value!r}'
    err = p.check(value) if p.check else None
    return f'{p.name}: {err}' if err else None


# ============================================================================ tools
@dataclass
class Tool:
    """One service offered to the LLM."""

    name: str
    service: str                 # resolved service name
    type_name: str               # e.g. std_srvs/srv/SetBool
    srv_class: Any
    description: str
    parameters: Dict[str, Any]   # grammar-safe JSON Schema (sent to the LLM)
    validator: Any               # jsonschema validator of the exact schema
    client: Any = None

    def openai(self) -> Dict[str, Any]:
        return {'type': 'function', 'function': {
            'name': self.name, 'description': self.description, 'parameters': self.parameters}}


def tool_names(services: Sequence[str]) -> Dict[str, str]:
    """
    Map resolved service names to tool names.

    A tool name is the service name's last component, extended with more of the path (joined
    by "_") for names that would otherwise be the same.
    """
    parts = {s: [p for p in s.split('/') if p] for s in services}
    depth = dict.fromkeys(services, 1)
    while True:
        names = {s: '_'.join(parts[s][-depth[s]:]) for s in services}
        clashes = [s for s in services
                   if list(names.values()).count(names[s]) > 1 and depth[s] < len(parts[s])]
        if not clashes:
            return names
        for s in clashes:
            depth[s] += 1


def parse_descriptions(entries: Sequence[str], services: Sequence[str],
                       resolved: Sequence[str]) -> Tuple[Dict[str, str], List[str]]:
    """Parse "SERVICE: text" entries into ({resolved name: text}, errors)."""
    out, errors = {}, []
    for entry in entries:
        if not entry.strip():
            continue
        key, sep, text = entry.partition(':')
        key, text = key.strip(), text.strip()
        if not sep or not text:
            errors.append(f'descriptions: {entry!r} is not "SERVICE: description"')
            continue
        matches = [r for s, r in zip(services, resolved) if key in (s.strip(), r)]
        if not matches:
            errors.append(f'descriptions: {key!r} is not one of the services {list(services)}')
            continue
        out[matches[0]] = text
    return out, errors


def parse_tool_calls(text: str) -> List[Tuple[str, Any]]:
    """
    Parse tool_calls_json into [(name, arguments)]; ValueError says what is wrong with it.

    ``arguments`` may be an object or (OpenAI style) a string holding a JSON object.
    """
    try:
        calls = json.loads(text)
    except ValueError as e:
        raise ValueError(f'tool_calls_json is not valid JSON: {e}') from e
    if not isinstance(calls, list):
        raise ValueError('tool_calls_json must be a JSON array of {"name", "arguments"}')
    out = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get('name'), str):
            raise ValueError(f'tool call {i}: expected an object with a string "name"')
        args = call.get('arguments', {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError as e:
                raise ValueError(f'tool call {i} ({call["name"]}): arguments string is not '
                                 f'JSON: {e}') from e
        out.append((call['name'], args))
    return out


@dataclass
class CallResult:
    name: str
    arguments: Any
    status: str                   # ok | dry_run | invalid | unavailable | timeout | failed
    service: str = ''             # | skipped
    type_name: str = ''
    response: Optional[Dict[str, Any]] = None
    error: str = ''

    def to_json(self) -> Dict[str, Any]:
        return {'name': self.name, 'service': self.service, 'type': self.type_name,
                'arguments': self.arguments, 'status': self.status,
                'response': self.response, 'error': self.error}


@dataclass
class Execution:
    """What execute_tool_calls did: one result per call, in order."""

    results: List[CallResult] = field(default_factory=list)
    error: str = ''               # empty when every call ended ok / dry_run

    @property
    def ok(self) -> bool:
        return not self.error

    def results_json(self) -> str:
        return json.dumps([r.to_json() for r in self.results], ensure_ascii=False)

    def summary(self) -> str:
        if not self.results:
            return self.error or 'No tool was called.'
        parts = []
        for r in self.results:
            detail = ''
            if r.status == 'ok' and isinstance(r.response, dict) and isinstance(
                    r.response.get('message'), str) and r.response['message']:
                detail = f' ({r.response["message"]})'
            elif r.error:
                detail = f' ({r.error})'
            parts.append(f'{r.name}: {r.status}{detail}')
        return '; '.join(parts) + '.'


def _schema_error(e: 'jsonschema.ValidationError') -> str:
    where = '.'.join(str(p) for p in e.absolute_path)
    return f'{where or "arguments"}: {e.message}'


# ============================================================================ node
class ToolBridge(LifecycleNode):

    def __init__(self, node_name: str = 'tool_bridge', **kwargs):
        super().__init__(node_name, **kwargs)
        for p in PARAMS:
            descriptor = ParameterDescriptor(
                description=p.description,
                additional_constraints=('applies to every instruction' if p.when == 'live'
                                        else 'applies at the next configure'))
            if isinstance(p.default, list):
                # An empty list default would be typed BYTE_ARRAY: declare the type instead,
                # then give the empty default unless an override set a value.
                self.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, descriptor)
                try:
                    self.get_parameter(p.name)
                except ParameterUninitializedException:
                    self.set_parameters([Parameter(p.name, Parameter.Type.STRING_ARRAY,
                                                   list(p.default))])
                continue
            if isinstance(p.default, float):
                descriptor.dynamic_typing = True   # accept 5 as well as 5.0 (checked below)
            self.declare_parameter(p.name, p.default, descriptor)
        self.add_on_set_parameters_callback(self._check_parameters)
        self._client_group = ReentrantCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()   # one instruction at a time
        self.tools: Dict[str, Tool] = {}
        self._chat_client = None
        self._chat_name = ''
        self._service = None
        self._active = False
        self._abort = threading.Event()
        self._inflight = 0
        self.lifecycle_state = 'unconfigured'
        self.configure_error = ''

    # ---------------------------------------------------------------- parameters
    def _check_parameters(self, params):
        errors = [e for p in params if p.name in BY_NAME
                  for e in [check_value(BY_NAME[p.name], p.value)] if e]
        return SetParametersResult(successful=not errors, reason='; '.join(errors))

    def _param(self, name):
        value = self.get_parameter(name).value
        return float(value) if isinstance(BY_NAME[name].default, float) else value

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            error = self._configure()
        except Exception as e:  # an escaping exception would become ERROR with no log
            error = f'unexpected {type(e).__name__}: {e}\n{traceback.format_exc()}'
        if error:
            self._teardown()
            self.configure_error = error
            self.get_logger().error(f'configure failed: {error}')
            return FAILURE
        self.configure_error = ''
        self.lifecycle_state = 'inactive'
        return SUCCESS

    def _configure(self) -> str:
        errors = [e for p in PARAMS for e in [check_value(p, self.get_parameter(p.name).value)]
                  if e]
        if errors:
            return 'invalid parameters: ' + '; '.join(errors)
        services = [s.strip() for s in self._param('services')]
        if not services:
            return 'services: no service to offer as a tool (list at least one)'
        resolved = []
        for s in services:
            try:
                name = self.resolve_service_name(s)
                validate_full_topic_name(name, is_service=True)
            except Exception as e:
                return f'services: {s!r} is not a valid service name: {e}'
            if name in resolved:
                return f'services: {name} is listed twice'
            resolved.append(name)
        descriptions, errors = parse_descriptions(self._param('descriptions'), services,
                                                  resolved)
        if errors:
            return '; '.join(errors)

        types, error = self._discover(resolved, self._param('discovery_timeout_s'))
        if error:
            return error
        names = tool_names(resolved)
        tools = {}
        for service in resolved:
            type_name = types[service]
            try:
                srv_class = import_interface(type_name)
                if not hasattr(srv_class, 'Request'):
                    return f'service {service}: {type_name} is not a service type'
                parameters = message_schema(srv_class.Request, grammar_safe=True)
                validator = jsonschema.Draft202012Validator(message_schema(srv_class.Request))
                fields = describe_fields(srv_class.Request)
            except UnsupportedFieldError as e:
                return f'service {service} ({type_name}): request {e}'
            except ValueError as e:
                return f'service {service}: {e}'
            name = names[service]
            if not TOOL_NAME_RE.match(name):
                return (f'service {service}: tool name {name!r} is not 1-64 characters of '
                        '[A-Za-z0-9_-]')
            description = descriptions.get(service) or (
                f'Calls the ROS service {service} ({type_name}). Arguments: {fields}.')
            tools[name] = Tool(name, service, type_name, srv_class, description, parameters,
                               validator)
        choice = self._param('tool_choice')
        if choice not in ('auto', 'none', 'required') and choice not in tools:
            return f'tool_choice: {choice!r} is not auto, none, required or a tool ' \
                   f'({", ".join(tools)})'
        for tool in tools.values():
            tool.client = self.create_client(tool.srv_class, tool.service,
                                             callback_group=self._client_group)
        self.tools = tools
        self._chat_name = self.resolve_service_name(self._param('chat_service'))
        self._chat_client = self.create_client(LLMChat, self._chat_name,
                                               callback_group=self._client_group)
        self._service = self.create_service(Instruct, self._param('instruct_service_name'),
                                            self._on_instruct,
                                            callback_group=self._service_group)
        self.get_logger().info(
            f'configured {len(tools)} tool(s): ' + ', '.join(
                f'{t.name} = {t.service} ({t.type_name})' for t in tools.values())
            + f'; chat service {self._chat_name}; serving '
              f'{self.resolve_service_name(self._param("instruct_service_name"))} once active')
        return ''

    def _discover(self, services: List[str], timeout: float) -> Tuple[Dict[str, str], str]:
        """Wait (bounded) for every service on the graph; ({service: type}, error)."""
        deadline = time.monotonic() + timeout
        while True:
            found = dict(self.get_service_names_and_types())
            missing = [s for s in services if s not in found]
            if not missing or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if missing:
            return {}, (f'service(s) not found on the graph within {timeout:g} s: '
                        f'{", ".join(missing)}')
        types = {}
        for s in services:
            if len(found[s]) != 1:
                return {}, f'service {s} is offered with several types: {found[s]}'
            types[s] = found[s][0]
        return types, ''

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._abort.clear()
        self._active = True
        self.lifecycle_state = 'active'
        self.get_logger().info('activated: accepting instructions')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_work()
        self.lifecycle_state = 'inactive'
        self.get_logger().info('deactivated: not serving')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle_state = 'finalized'
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error processing a transition from {state.label}')
        self._teardown()
        return SUCCESS

    def _stop_work(self) -> None:
        """Refuse new work; an instruction in progress stops before its next call (bounded)."""
        self._active = False
        self._abort.set()
        busy = self._inflight > 0
        deadline = time.monotonic() + 5.0
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        if busy:
            time.sleep(REPLY_GRACE_S)

    def _teardown(self) -> None:
        """Release everything configure created; safe in any state, repeatedly."""
        self._stop_work()
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        for tool in self.tools.values():
            if tool.client is not None:
                self.destroy_client(tool.client)
        self.tools = {}
        if self._chat_client is not None:
            self.destroy_client(self._chat_client)
            self._chat_client = None
        self.lifecycle_state = 'unconfigured'

    # ---------------------------------------------------------------- calls
    def _call(self, client, name: str, request, timeout: float) -> Tuple[str, Any, str]:
        """Call service ``name`` once, bounded by ``timeout``: (status, response, error)."""
        deadline = time.monotonic() + timeout
        while not client.service_is_ready():
            if self._abort.is_set():
                return 'skipped', None, 'node deactivated'
            if time.monotonic() >= deadline:
                return 'unavailable', None, (f'service {name} is not available '
                                             f'(waited {timeout:g} s)')
            time.sleep(0.05)
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        while not done.wait(0.05):
            if time.monotonic() >= deadline or self._abort.is_set():
                break
        if not future.done():
            client.remove_pending_request(future)
            if self._abort.is_set():
                return 'failed', None, 'node deactivated while waiting for the response'
            return 'timeout', None, (
                f'no response from {name} within {timeout:g} s (the service is '
                'slow or its handler failed: rclpy sends no response when a handler raises); '
                'the request may still take effect')
        if future.exception() is not None:
            e = future.exception()
            return 'failed', None, f'{type(e).__name__}: {e}'
        return 'ok', future.result(), ''

    def execute_tool_calls(self, tool_calls_json: str) -> Execution:
        """
        Check, then run (or with dry_run only report) the calls in ``tool_calls_json``.

        Never raises for bad input, never calls a service that is not one of the tools.
        """
        run = Execution()
        try:
            calls = parse_tool_calls(tool_calls_json)
        except ValueError as e:
            run.error = str(e)
            return run
        limit = self._param('max_tool_calls')
        requests = []
        for i, (name, args) in enumerate(calls):
            tool = self.tools.get(name)
            result = CallResult(name, args, 'invalid')
            request, error = None, ''
            if tool is None:
                error = (f'unknown tool {name!r}: not one of the configured tools '
                         f'({", ".join(self.tools) or "none"})')
            else:
                result.service, result.type_name = tool.service, tool.type_name
                error = next((_schema_error(e) for e in sorted(
                    tool.validator.iter_errors(args), key=lambda e: list(e.absolute_path))),
                    '')
                if not error:
                    try:
                        request = json_to_message(tool.srv_class.Request, args)
                    except ArgumentError as e:
                        error = str(e)
            if i >= limit:
                error = f'more than max_tool_calls={limit} calls'
            result.error = error
            run.results.append(result)
            requests.append(request)
        bad = [(i, r) for i, r in enumerate(run.results) if r.error]
        if bad:
            for r in run.results:
                if not r.error:
                    r.status, r.error = 'skipped', 'not executed: another call was invalid'
            run.error = '; '.join(f'call {i} ({r.name}): {r.error}' for i, r in bad)
            self.get_logger().warning(f'tool calls refused: {run.error}')
            return run
        dry = self._param('dry_run')
        timeout = self._param('call_timeout_s')
        failed = None
        for i, (result, request) in enumerate(zip(run.results, requests)):
            tool = self.tools[result.name]
            if dry:
                result.status = 'dry_run'
                self.get_logger().info(f'dry run: {tool.name} -> {tool.service} '
                                       f'{json.dumps(result.arguments)}')
                continue
            if failed is not None or self._abort.is_set():
                result.status = 'skipped'
                result.error = ('not executed: node deactivated' if failed is None
                                else f'not executed: call {failed} failed')
                continue
            self.get_logger().info(f'calling {tool.service} ({tool.name}) '
                                   f'{json.dumps(result.arguments)}')
            status, response, error = self._call(tool.client, tool.service, request, timeout)
            result.status, result.error = status, error
            if response is not None:
                result.response = message_to_json(response)
            if status != 'ok':
                failed = i
                self.get_logger().warning(f'{tool.service}: {status}: {error}')
            else:
                self.get_logger().info(f'{tool.service} answered '
                                       f'{json.dumps(result.response)}')
        errors = [f'call {i} ({r.name}): {r.status}: {r.error}'
                  for i, r in enumerate(run.results) if r.status not in ('ok', 'dry_run')]
        run.error = '; '.join(errors)
        return run

    # ---------------------------------------------------------------- Instruct
    def _chat(self, **fields) -> Tuple[Optional[Any], str]:
        status, reply, error = self._call(self._chat_client, self._chat_name,
                                          LLMChat.Request(**fields),
                                          self._param('chat_timeout_s'))
        if status != 'ok':
            return None, f'chat service: {status}: {error}'
        if not reply.success and reply.finish_reason != 'tool_calls':
            return reply, f'chat service: {reply.error or reply.finish_reason}'
        return reply, ''

    def instruct(self, instruction: str, session_id: str = '') -> Instruct.Response:
        """Handle one instruction (what the Instruct service does)."""
        out = Instruct.Response()
        if not self._active:
            out.error = (f'node is {self.lifecycle_state}: not serving (activate it with the '
                         'lifecycle change_state service)')
            return out
        if not instruction.strip():
            out.error = 'instruction: must be non-empty'
            return out
        choice = self._param('tool_choice')
        tools_json = json.dumps([t.openai() for t in self.tools.values()], ensure_ascii=False)
        reply, error = self._chat(prompt=instruction, session_id=session_id,
                                  tools_json=tools_json,
                                  tool_choice='' if choice == 'auto' else choice)
        if error:
            out.error = error
            return out
        out.tool_calls_json = reply.tool_calls_json
        if not reply.tool_calls_json.strip():
            if reply.finish_reason == 'tool_calls':
                out.error = 'chat service: finish_reason is tool_calls but tool_calls_json ' \
                            'is empty'
                return out
            out.reply, out.success = reply.response, True
            return out
        run = self.execute_tool_calls(reply.tool_calls_json)
        out.tool_results_json = run.results_json()
        out.success, out.error = run.ok, run.error
        out.reply = run.summary()
        if self._param('answer_after_tools') and self._active:
            follow, ferror = self._chat(
                prompt=FOLLOW_UP_PROMPT.format(instruction=instruction,
                                               results=out.tool_results_json),
                session_id=session_id, tool_choice='none')
            if ferror:
                self.get_logger().warning(f'answer after tools failed: {ferror}; replying '
                                          'with the summary')
                note = f'answer after tools failed ({ferror}); reply is the summary'
                out.error = f'{out.error}; {note}' if out.error else note
            else:
                out.reply = follow.response
        return out

    def _on_instruct(self, request, response):
        self._inflight += 1
        try:
            self.get_logger().info(f'instruction: {request.instruction!r}')
            result = self.instruct(request.instruction, request.session_id)
            for name in ('reply', 'tool_calls_json', 'tool_results_json', 'success', 'error'):
                setattr(response, name, getattr(result, name))
            if result.error:
                self.get_logger().warning(f'instruction not fully done: {result.error}')
            return response
        except Exception as e:  # answer the client rather than leave it without a response
            self.get_logger().error(f'instruction failed: {traceback.format_exc()}')
            response.success = False
            response.error = f'unexpected {type(e).__name__}: {e}'
            return response
        finally:
            self._inflight -= 1


def main(args=None):
    """Run the bridge until shutdown; its services and clients are released on the way out."""
    node_main.run(ToolBridge, args, on_exit=lambda node: node._teardown())


if __name__ == '__main__':
    main()
