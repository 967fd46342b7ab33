# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The lifecycle chat node (executable ``chat_node``).

  unconfigured  nothing loaded; parameters declared
  configure     validate parameters, load the GGUF, start the worker, create the servers
  activate      the service and action accept work
  deactivate    new work is refused (service: success=false; action: goal rejected); the
                running and queued generations are cancelled and answered with the text so far
  cleanup       servers destroyed, worker joined, model and context freed (RSS drops back)
  shutdown / error: same teardown from any state

Threading: a MultiThreadedExecutor runs the lifecycle services (default group) and our
service/action callbacks (a reentrant group). Callbacks never run a generation themselves:
they submit a job to ChatCore's single worker thread and ``await`` its completion, so a slow
generation blocks neither lifecycle transitions nor other requests.
"""
from dataclasses import dataclass, field
import json
import os
import threading
import time
import traceback
from typing import Dict, Optional, Set

from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.action import CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from std_msgs.msg import String

from . import node_main, settings
from .chat_core import ChatCore, ChatReply, ChatRequest, CoreConfig, GenerationSettings
from .chat_diagnostics import fill_status
from .diagnostics_compat import make_updater
from .engine import LlamaEngine, ModelConfig, ModelLoadError, SamplingParams
from .feedback import FeedbackBatcher, SentenceFeedback
from .memory import return_large_blocks_to_the_os, rss_mb, trim_heap
from .remote_url import public_url
from .reply_tracking import (ChatActionServer, ReplyTracker, RESULT_REQUEST_GRACE_S,
                             track_service)
from .session_cache import SessionCache, SessionDisk
from .stats import ChatStats
from .structured_output import FormatResolver

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
CLIENT_CANCEL = 'cancel requested by the client'
# Requests and replies of chat_service and of chat_action's goal/cancel/result services. ROS's
# default service QoS keeps only 10 samples: a burst of 24 simultaneous calls lost 14 of them
# silently (requests never taken, responses overwritten). KEEP_ALL loses none; the node drains
# the queue at once (requests beyond capacity are refused with an answer, not left waiting).
SERVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
# Every partial matters (they concatenate to the reply): keep a deep feedback history so a
# briefly slow client does not lose feedback samples (default depth is 10).
FEEDBACK_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
CLIENT_CHECK_PERIOD_S = 0.5


@dataclass
class _RunningGoal:
    """An accepted goal while its execute callback runs (for cancel and departed clients)."""

    handle: object
    job: object = None
    started: float = field(default_factory=time.monotonic)
    clients_seen: Set[bytes] = field(default_factory=set)  # feedback subscribers seen
    alone_since: Optional[float] = None


class ChatNode(LifecycleNode):

    def __init__(self, node_name: str = 'chat_node', **kwargs):
        super().__init__(node_name, **kwargs)
        for p in settings.PARAMS:
            self.declare_parameter(p.name, p.default, ParameterDescriptor(
                description=p.description,
                additional_constraints=('applies to every request' if p.when == 'live'
                                        else 'applies at the next configure')))
        self.add_on_set_parameters_callback(self._check_parameters)
        self._group = ReentrantCallbackGroup()
        self.stats = ChatStats()
        self._engine: Optional[LlamaEngine] = None
        self._core: Optional[ChatCore] = None
        self._service = None
        self._action = None
        self._active = False
        self.lifecycle_state = 'unconfigured'
        self.configure_error = ''
        self._replies = ReplyTracker()      # replies not yet handed to rclpy
        self._goals: Dict[bytes, _RunningGoal] = {}
        self._goals_lock = threading.Lock()
        self._feedback_topic = ''
        self._client_timer = None
        self.baseline_rss_mb = rss_mb()
        # Created once per node: diagnostic_updater declares a parameter and has no destroy.
        self._updater = make_updater(self)
        self._updater.setHardwareID('none')
        self._updater.add('LLM chat', self._diagnose)
        self._stats_pub = self.create_publisher(String, '~/stats', 10)
        # Discovery is gradual: a twin may appear after configure, so look again now and then.
        self._twins_warned = 1
        self._twin_timer = self.create_timer(2.0, self._warn_if_name_taken)

    # ================================================================ parameters
    def _check_parameters(self, params):
        values = {p.name: p.value for p in params if p.name in settings.BY_NAME}
        # Cross-parameter rules need the current value of the partner parameter.
        for changed, partners in settings.PARTNERS.items():
            if changed in values:
                for name in partners:
                    if name not in values and self.has_parameter(name):
                        values[name] = self.get_parameter(name).value
        errors = settings.validate(values)
        return SetParametersResult(successful=not errors, reason='; '.join(errors))

    def _param(self, name):
        return self.get_parameter(name).value

    def _values(self) -> dict:
        return {p.name: self._param(p.name) for p in settings.PARAMS}

    def _generation_settings(self) -> GenerationSettings:
        values = {p.name: self._param(p.name) for p in settings.PARAMS if p.when == 'live'}
        return settings.build(GenerationSettings, values,
                              sampling=settings.build(SamplingParams, values))

    # ================================================================ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return self._configure()
        except Exception as e:  # an escaping exception would become ERROR with no log
            self._teardown()
            return self._configure_failed(f'unexpected {type(e).__name__}: {e}',
                                          traceback.format_exc())

    def _configure(self) -> TransitionCallbackReturn:
        values = self._values()
        errors = settings.validate(values)
        if errors:
            return self._configure_failed('invalid parameters: ' + '; '.join(errors))
        self._warn_if_name_taken()
        before = rss_mb()
        cache = SessionCache(int(values['session_cache_mb'] * 2**20))
        try:
            engine = self._make_engine(values, cache)
        except ModelLoadError as e:
            return self._configure_failed(str(e))
        try:
            formats = FormatResolver(values['response_format'], values['json_schema_file'],
                                     values['grammar_file'])
            disk = None
            if values['session_dir']:
                disk = SessionDisk(os.path.expanduser(values['session_dir']),
                                   engine.session_identity(), self._log)
        except (ValueError, OSError) as e:
            engine.close()
            what = 'session_dir' if isinstance(e, OSError) else 'structured output'
            return self._configure_failed(f'{what}: {e}')
        cache.disk = disk
        self._engine = engine
        self._core = ChatCore(engine, settings.build(CoreConfig, values), formats, self.stats,
                              self._log, disk)
        stored = self._core.load_saved_sessions()
        if disk is not None:
            self.get_logger().info(
                f'session_dir {disk.directory}: {len(stored)} session(s) restored, '
                f'{sum(1 for s in stored if s.kv_usable)} with their KV cache')
        self._service = track_service(self.create_service(
            LLMChat, values['chat_service_name'], self._on_service, qos_profile=SERVICE_QOS,
            callback_group=self._group), self._replies)
        self._action = ChatActionServer(
            self, LLMChatAction, values['chat_action_name'], execute_callback=self._on_execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            callback_group=self._group, goal_service_qos_profile=SERVICE_QOS,
            result_service_qos_profile=SERVICE_QOS, cancel_service_qos_profile=SERVICE_QOS,
            feedback_pub_qos_profile=FEEDBACK_QOS,
            tracker=self._replies, on_cancel_processed=self._cancel_requested_goals)
        action_name = self.resolve_topic_name(values['chat_action_name'])
        self._feedback_topic = f'{action_name}/_action/feedback'
        if values['departed_client_grace_s'] > 0:
            self._client_timer = self.create_timer(
                CLIENT_CHECK_PERIOD_S, self._check_departed_clients, callback_group=self._group)
        info = engine.info
        self._updater.setHardwareID(info.path.rsplit('/', 1)[-1])
        self.configure_error = ''
        self.lifecycle_state = 'inactive'
        if engine.backend == 'openai':
            loaded = (f'backend openai: model {info.path!r} at {engine.url} (checked in '
                      f'{info.load_time_s:.2f} s); up to n_parallel={info.n_parallel} requests '
                      f'in flight, n_ctx={info.n_ctx}')
        else:
            loaded = (f'loaded {info.path} ({info.file_size_bytes / 1e6:.1f} MB) in '
                      f'{info.load_time_s:.2f} s; n_parallel={info.n_parallel} slots x n_ctx='
                      f'{info.n_ctx} (trained {info.n_ctx_train}; context '
                      f'~{engine.context_mb:.0f} MB), n_threads={info.n_threads}, chat template '
                      f'from {info.chat_template_source}')
        self.get_logger().info(
            f'configured: {loaded}, output format {formats.description}; RSS '
            f'{before:.0f} -> {rss_mb():.0f} MB; serving '
            f'{self.resolve_service_name(values["chat_service_name"])} and {action_name} once '
            'active')
        self._updater.force_update()
        return SUCCESS

    def _make_engine(self, values: dict, cache: SessionCache):
        """
        Create the generation backend: llama.cpp here, or an OpenAI-compatible server.

        The remote backend's module (and its HTTP client library) is imported only when it
        is used: a robot running the local model does not need the ``openai`` package.
        """
        if values['backend'] == 'openai':
            from .openai_backend import BackendError, OpenAIEngine, RemoteConfig
            try:
                return OpenAIEngine(settings.build(RemoteConfig, values), cache, self._log)
            except BackendError as e:
                raise ModelLoadError(str(e)) from e
        return LlamaEngine(settings.build(ModelConfig, values), cache, self._log)

    def _warn_if_name_taken(self) -> None:
        """
        Warn loudly when another node already has this node's name.

        Two nodes with one name share lifecycle services and parameters: ``ros2 lifecycle set`` and
        the manager then reach either of them. ROS allows it; say so loudly, once per new twin
        (checked at configure and every 2 s, as discovery may find a twin late).
        """
        me = (self.get_name(), self.get_namespace())
        twins = sum(1 for n in self.get_node_names_and_namespaces() if n == me)
        if twins > self._twins_warned:
            self._twins_warned = twins
            self.get_logger().warning(
                f'{twins} nodes are named {self.get_fully_qualified_name()} on this graph: '
                'lifecycle transitions, parameters and chat requests may reach the other one; '
                'give each node its own name (--ros-args -r __node:=<name>)')

    def _configure_failed(self, reason: str, detail: str = '') -> TransitionCallbackReturn:
        self.configure_error = reason
        self.lifecycle_state = 'unconfigured'
        self.get_logger().error(f'configure failed: {reason}' + (f'\n{detail}' if detail else ''))
        self._updater.force_update()
        return FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        self.lifecycle_state = 'active'
        self.get_logger().info('activated: accepting chat requests')
        self._updater.force_update()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        if not self._stop_work('node deactivated'):
            # Never report "inactive" while a generation still runs: stay active.
            self._active = True
            self._updater.force_update()
            return FAILURE
        self.lifecycle_state = 'inactive'
        self.get_logger().info('deactivated: not serving')
        self._updater.force_update()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle_state = 'unconfigured'
        self._updater.force_update()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle_state = 'finalized'
        self._updater.force_update()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error processing a transition from {state.label}; '
                                'releasing the model')
        self._teardown()
        self.lifecycle_state = 'unconfigured'
        return SUCCESS

    def _stop_work(self, reason: str) -> bool:
        """
        Cancel the running and queued generations and wait (bounded) until they have ended.

        Also waits until their replies are handed to rclpy. Returns False if a generation is
        still running.
        """
        if self._core is None:
            return True
        jobs = self._core.cancel_all(reason)
        timeout = self._param('deactivate_timeout_s')
        deadline = time.monotonic() + timeout
        stopped = self._core.wait_idle(timeout)
        if not stopped:
            self.get_logger().error(
                f'{reason}: a generation is still running {timeout} s after it was cancelled '
                '(deactivate_timeout_s)')
        if not self._replies.wait_idle(max(0.0, deadline - time.monotonic())):
            self.get_logger().warning(
                f'{reason}: {self._replies.pending} reply(ies) not yet sent after {timeout} s')
        if jobs:
            self.get_logger().info(f'{reason}: cancelled {len(jobs)} request(s)')
        return stopped

    def _teardown(self, reason: str = 'node cleaning up') -> None:
        """Release everything configure created; safe to call in any state, repeatedly."""
        self._active = False
        self._stop_work(reason)
        if self._client_timer is not None:
            self.destroy_timer(self._client_timer)
            self._client_timer = None
        if self._action is not None:
            # a client whose result request is still on its way would never get the result
            timeout = self._param('deactivate_timeout_s')
            if not self._action.wait_results_requested(timeout):
                self.get_logger().warning(
                    f"{reason}: a finished goal's result was not asked for within "
                    f'{min(timeout, RESULT_REQUEST_GRACE_S):g} s; destroying the action server '
                    'anyway')
            self._replies.wait_idle(timeout)
            self._action.destroy()
            self._action = None
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        core, engine = self._core, self._engine
        self._core = self._engine = None
        if core is not None:
            core.close(timeout=self._param('deactivate_timeout_s') + 5)
        if engine is not None:
            before = rss_mb()
            timeout = self._param('deactivate_timeout_s') + 5
            # with session_dir, every conversation still in a slot is saved first
            if engine.close(save=core.save_session if core and core.disk else None,
                            timeout=timeout):
                trim_heap()
                self.get_logger().info(f'model released: RSS {before:.0f} -> {rss_mb():.0f} MB')
            else:
                self.get_logger().error(
                    'the LLM scheduler did not stop (inside a long llama.cpp call?): the model '
                    'is freed when it ends, not now (that would crash the process)')
        if core is not None:
            if core.disk is not None and not core.disk.close(timeout=10.0):
                self.get_logger().warning('session_dir: some sessions were not written')
            core.sessions.clear()

    def shutdown_on_signal(self, signame: str) -> None:
        """
        Shut down on SIGINT/SIGTERM: answer every request, then free the model.

        Answer every running and queued request (success=false, the reason), make sure the
        replies are sent, free the model. The executor must still be spinning.
        """
        self.get_logger().info(f'{signame}: shutting down')
        self._teardown(f'node shutting down ({signame})')
        self.lifecycle_state = 'finalized'

    # ================================================================ requests
    def _refusal(self) -> Optional[ChatReply]:
        if self._active and self._core is not None:
            return None
        self.stats.refused()
        return ChatReply(error=f'node is {self.lifecycle_state}: not serving (activate it '
                               'with the lifecycle change_state service)',
                         finish_reason='error')

    async def _await_job(self, job) -> ChatReply:
        if job.done.is_set():
            return job.result
        future = Future(executor=self.executor)
        # A done-callback makes set_result (called on the worker thread) wake the executor.
        future.add_done_callback(lambda _: None)
        job.add_done_callback(lambda j: future.set_result(j.result))
        return await future

    async def _on_service(self, request, response):
        self._replies.begin()  # ended by track_service once the response is sent
        try:
            reply = self._refusal()
            if reply is None:
                job = self._core.submit(_chat_request(request), self._generation_settings())
                reply = await self._await_job(job)
        except Exception as e:  # never leave a client without an answer
            self.get_logger().error(f'chat_service: {type(e).__name__}: {e}')
            reply = ChatReply(error=f'internal error: {type(e).__name__}: {e}')
        _fill(response, reply)
        return response

    def _on_goal(self, goal) -> GoalResponse:
        if self._active and self._core is not None:
            return GoalResponse.ACCEPT
        self.stats.refused()
        self.get_logger().warning(f'goal rejected: node is {self.lifecycle_state}, not serving')
        return GoalResponse.REJECT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        # The job is cancelled in _cancel_requested_goals, once rclpy has moved the goal to
        # CANCELING (only then may the execute callback report it canceled).
        return CancelResponse.ACCEPT

    def _cancel_requested_goals(self) -> None:
        """
        Cancel the jobs of the goals now CANCELING (a cancel request has been processed).

        A running one stops within a token or prompt chunk; a queued one is answered now.
        """
        core = self._core
        with self._goals_lock:
            goals = list(self._goals.values())
        for goal in goals:
            if goal.job is not None and core is not None and goal.handle.is_cancel_requested:
                core.cancel(goal.job, CLIENT_CANCEL)

    async def _on_execute(self, goal_handle):
        key = bytes(goal_handle.goal_id.uuid)
        result = LLMChatAction.Result()
        goal = _RunningGoal(goal_handle)
        try:
            reply = self._refusal()
            if reply is None and goal_handle.is_cancel_requested:
                reply = ChatReply(error='cancelled before it started', finish_reason='cancelled')
            if reply is None:
                feedback, reply = self._goal_feedback(goal_handle)
            if reply is None:
                goal.job = self._core.submit(_chat_request(goal_handle.request),
                                             self._generation_settings(), feedback.add)
                with self._goals_lock:
                    self._goals[key] = goal
                if goal_handle.is_cancel_requested:  # cancelled while we were submitting
                    self._core.cancel(goal.job, CLIENT_CANCEL)
                reply = await self._await_job(goal.job)
                feedback.flush()  # the generation is over: send what is still batched
        except Exception as e:  # never leave a goal without a result
            self.get_logger().error(f'chat_action: {type(e).__name__}: {e}')
            reply = ChatReply(error=f'internal error: {type(e).__name__}: {e}')
        finally:
            with self._goals_lock:
                self._goals.pop(key, None)
        _fill(result, reply)
        result.time_to_first_token_s = float(reply.time_to_first_token_s)
        if reply.finish_reason == 'cancelled' and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif reply.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _goal_feedback(self, goal_handle):
        """
        Choose the feedback publisher for the goal's stream_unit.

        Returns (publisher, None), or (None, error reply) for an unknown stream_unit: the goal
        is then refused before anything is generated.
        """
        unit = goal_handle.request.stream_unit

        def publish(text):
            self._publish_feedback(goal_handle, text)
        if unit in ('', 'token'):
            return FeedbackBatcher(publish, self._param('feedback_min_interval_s')), None
        if unit == 'sentence':
            return SentenceFeedback(publish, self._param('max_sentence_chars')), None
        error = f'stream_unit: must be "", "token" or "sentence" (got {unit!r})'
        self.stats.record('failed', 0.0, error=error)
        self.get_logger().warning(f'goal refused: {error}')
        return None, ChatReply(error=error, finish_reason='error')

    def _publish_feedback(self, goal_handle, text: str) -> None:
        try:
            goal_handle.publish_feedback(LLMChatAction.Feedback(partial=text))
        except Exception as e:  # context shut down under us: the result still carries it all
            self.get_logger().debug(f'feedback not published: {e}')

    def _check_departed_clients(self) -> None:
        """
        Cancel goals whose action client has left the graph.

        ROS does not say which client sent a goal (rclpy exposes no request writer GUID), only
        which subscribers the feedback topic has. Every action client subscribes to it, so the
        goal's client is among the subscribers seen while the goal runs; when none of those is
        left for departed_client_grace_s, the client is certainly gone. A goal whose client
        died while other clients stay connected cannot be told apart: max_generation_s bounds
        it.
        """
        with self._goals_lock:
            goals = [g for g in self._goals.values() if g.job is not None]
        if not goals or self._core is None:
            return
        try:
            present = {bytes(info.endpoint_gid)
                       for info in self.get_subscriptions_info_by_topic(self._feedback_topic)}
        except Exception:  # graph query failed (shutting down): try again next period
            return
        grace = self._param('departed_client_grace_s')
        now = time.monotonic()
        for goal in goals:
            goal.clients_seen |= present
            if goal.clients_seen & present:
                goal.alone_since = None
                continue
            goal.alone_since = goal.alone_since or now
            if now - goal.alone_since >= grace and not goal.job.cancelled:
                self.get_logger().warning(
                    f'goal {bytes(goal.handle.goal_id.uuid).hex()[:8]}: its action client left '
                    f'(no feedback subscriber for {grace:.1f} s): stopping its generation')
                self._core.cancel(goal.job, f'the action client left (no feedback subscriber '
                                            f'for {grace:.1f} s)')

    # ================================================================ diagnostics
    def snapshot(self) -> dict:
        core, engine = self._core, self._engine
        if engine is not None and engine.backend == 'openai':
            backend = ('openai', engine.url, engine.config.model)
        elif engine is not None:
            backend = ('local', '', '')
        else:  # what the next configure uses
            backend = (self._param('backend'), public_url(self._param('base_url')),
                       self._param('model'))
        rss = rss_mb()
        snap = dict(self.stats.snapshot())
        snap.update(
            lifecycle_state=self.lifecycle_state,
            backend=backend[0], base_url=backend[1], model=backend[2],
            configure_error=self.configure_error,
            last_error=self.stats.last_error,
            last_generation_failed=self.stats.last_generation_failed,
            model_path=engine.info.path if engine else (self._param('model_path') or
                                                        settings.default_model_path()),
            model_file_mb=engine.info.file_size_bytes / 1e6 if engine else 0.0,
            model_load_s=engine.info.load_time_s if engine else 0.0,
            n_ctx=engine.info.n_ctx if engine else self._param('n_ctx'),
            n_threads=engine.info.n_threads if engine else self._param('n_threads'),
            rss_mb=rss,
            model_rss_mb=max(0.0, rss - self.baseline_rss_mb) if engine else 0.0,
            queue_depth=core.queue_depth if core else 0,
            max_queue=self._param('max_queue'),
            generating=bool(core and core.busy),
            slots_busy=core.running if core else 0,
            slots_total=engine.n_parallel if engine else self._param('n_parallel'),
            active_sessions=len(core.sessions) if core else 0,
            sessions_in_slots=engine.sessions_in_slots() if engine else 0,
            sessions_in_ram=len(engine.cache) if engine else 0,
            sessions_on_disk=(core.disk.kv_sessions if core and core.disk else 0),
            session_cache_mb=engine.cache.ram_bytes / 2**20 if engine else 0.0,
            prompt_tokens_total=engine.prompt_tokens_total if engine else 0,
            prompt_tokens_cached=engine.prompt_tokens_cached if engine else 0,
            prompt_cache_ratio=(engine.prompt_tokens_cached / engine.prompt_tokens_total
                                if engine and engine.prompt_tokens_total else 0.0),
            sessions_restored_ram=engine.restored['ram'] if engine else 0,
            sessions_restored_disk=engine.restored['disk'] if engine else 0,
        )
        return snap

    def _diagnose(self, stat):
        snap = self.snapshot()
        fill_status(stat, snap, latency_warn_s=self._param('diag_latency_warn_s'),
                    rss_warn_mb=self._param('diag_rss_warn_mb'),
                    queue_warn_ratio=self._param('diag_queue_warn_ratio'))
        self._stats_pub.publish(String(data=json.dumps(snap, sort_keys=True)))
        return stat

    def _log(self, level: str, message: str) -> None:
        # One call site per severity: rclpy refuses a second severity from the same line
        # ("Logger severity cannot be changed between calls").
        logger = self.get_logger()
        if level == 'error':
            logger.error(message)
        elif level == 'warn':
            logger.warning(message)
        else:
            logger.info(message)


REQUEST_FIELDS = ('prompt', 'session_id', 'reset_session', 'response_format', 'json_schema',
                  'system_prompt', 'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p',
                  'repeat_penalty', 'seed', 'messages_json', 'tools_json', 'tool_choice')


def _chat_request(msg) -> ChatRequest:
    """Return an LLMChat request or LLMChatAction goal as a ChatRequest (same field names)."""
    return ChatRequest(stop=tuple(msg.stop),
                       **{name: getattr(msg, name) for name in REQUEST_FIELDS})


def _fill(msg, reply: ChatReply) -> None:
    msg.response = reply.response
    msg.success = reply.success
    msg.error = reply.error
    msg.finish_reason = reply.finish_reason
    msg.prompt_tokens = int(reply.prompt_tokens)
    msg.completion_tokens = int(reply.completion_tokens)
    msg.latency_s = float(reply.latency_s)
    msg.cached_prompt_tokens = int(reply.cached_prompt_tokens)
    msg.tool_calls_json = reply.tool_calls_json


def main(args=None):
    """
    Run the node until SIGINT/SIGTERM (or an external rclpy shutdown).

    The node handles the signals itself (node_main.py): the executor keeps spinning while it
    answers everything in flight (success=false, "node shutting down (SIGTERM)"), sends the
    replies and frees the model; then the process exits (within about a second).
    """
    return_large_blocks_to_the_os()
    node_main.run(ChatNode, args, on_signal=lambda node, name: node.shutdown_on_signal(name),
                  on_exit=lambda node: node._teardown())


if __name__ == '__main__':
    main()
