"""The lifecycle chat node (executable ``chat_node``).

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
import json
import threading
import time
import traceback
from typing import Dict, Optional

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.task import Future
from std_msgs.msg import String

from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat

from . import settings
from .chat_core import ChatCore, ChatReply, ChatRequest, CoreConfig, GenerationSettings
from .chat_diagnostics import fill_status
from .diagnostics_compat import make_updater
from .engine import LlamaEngine, ModelConfig, ModelLoadError, SamplingParams
from .memory import rss_mb, trim_heap
from .stats import ChatStats
from .structured_output import FormatResolver

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
CLIENT_CANCEL = 'cancel requested by the client'
REPLY_GRACE_S = 0.2  # see _stop_work


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
        self._inflight = 0
        self._goal_jobs: Dict[bytes, object] = {}
        self.baseline_rss_mb = rss_mb()
        # Created once per node: diagnostic_updater declares a parameter and has no destroy.
        self._updater = make_updater(self)
        self._updater.setHardwareID('none')
        self._updater.add('LLM chat', self._diagnose)
        self._stats_pub = self.create_publisher(String, '~/stats', 10)

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

    def _generation_settings(self) -> GenerationSettings:
        stop = self._param('stop') or []
        return GenerationSettings(
            sampling=SamplingParams(
                max_tokens=self._param('max_tokens'), temperature=self._param('temperature'),
                top_p=self._param('top_p'), top_k=self._param('top_k'),
                min_p=self._param('min_p'), repeat_penalty=self._param('repeat_penalty'),
                seed=self._param('seed'), stop=tuple(s for s in stop if s)),
            system_prompt=self._param('system_prompt'))

    # ================================================================ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return self._configure()
        except Exception as e:  # an escaping exception would become ERROR with no log
            self._teardown()
            return self._configure_failed(f'unexpected {type(e).__name__}: {e}',
                                          traceback.format_exc())

    def _configure(self) -> TransitionCallbackReturn:
        values = {p.name: self._param(p.name) for p in settings.PARAMS}
        errors = settings.validate(values)
        if errors:
            return self._configure_failed('invalid parameters: ' + '; '.join(errors))
        path = values['model_path'] or settings.default_model_path()
        before = rss_mb()
        try:
            engine = LlamaEngine(ModelConfig(
                model_path=path, n_ctx=values['n_ctx'], n_threads=values['n_threads'],
                n_threads_batch=values['n_threads_batch'], n_batch=values['n_batch'],
                n_gpu_layers=values['n_gpu_layers'], use_mmap=values['use_mmap'],
                use_mlock=values['use_mlock'], chat_template=values['chat_template']))
        except ModelLoadError as e:
            return self._configure_failed(str(e))
        try:
            formats = FormatResolver(values['response_format'], values['json_schema_file'],
                                     values['grammar_file'], engine.json_grammar,
                                     engine.compile_grammar)
        except ValueError as e:
            engine.close()
            return self._configure_failed(f'structured output: {e}')
        self._engine = engine
        self._core = ChatCore(engine, CoreConfig(
            max_queue=values['max_queue'], max_prompt_chars=values['max_prompt_chars'],
            max_sessions=values['max_sessions'],
            max_session_turns=values['max_session_turns']), formats, self.stats, self._log)
        self._service = self.create_service(
            LLMChat, values['chat_service_name'], self._on_service, callback_group=self._group)
        self._action = ActionServer(
            self, LLMChatAction, values['chat_action_name'], execute_callback=self._on_execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            callback_group=self._group,
            # Every partial matters (they concatenate to the reply): keep a deep history so a
            # briefly slow client does not lose feedback samples (default depth is 10).
            feedback_pub_qos_profile=QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        info = engine.info
        self._updater.setHardwareID(info.path.rsplit('/', 1)[-1])
        self.configure_error = ''
        self.lifecycle_state = 'inactive'
        self.get_logger().info(
            f'configured: loaded {info.path} ({info.file_size_bytes / 1e6:.1f} MB) in '
            f'{info.load_time_s:.2f} s; n_ctx={info.n_ctx} (trained {info.n_ctx_train}), '
            f'n_threads={info.n_threads}, chat template from {info.chat_template_source}, '
            f'output format {formats.description}; RSS {before:.0f} -> {rss_mb():.0f} MB; '
            f'serving {self.resolve_service_name(values["chat_service_name"])} and '
            f'{self.resolve_topic_name(values["chat_action_name"])} once active')
        self._updater.force_update()
        return SUCCESS

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
        self.lifecycle_state = 'inactive'
        self._stop_work('node deactivated')
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

    def _stop_work(self, reason: str) -> None:
        """Cancel the running and queued generations and wait (bounded) for them to end."""
        if self._core is None:
            return
        jobs = self._core.cancel_all(reason)
        timeout = self._param('deactivate_timeout_s')
        if not self._core.wait_idle(timeout):
            self.get_logger().error(f'generation still running {timeout} s after cancel')
        # Let the service/action callbacks hand their replies to the clients.
        busy = bool(jobs) or self._inflight > 0
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        if busy:
            # The callbacks have returned, but rclpy sends the service response right after
            # and the action result from a further executor task: give those a moment, or
            # cleanup/shutdown destroys the servers first and the replies are lost.
            time.sleep(REPLY_GRACE_S)
        if jobs:
            self.get_logger().info(f'{reason}: cancelled {len(jobs)} request(s)')

    def _teardown(self) -> None:
        """Release everything configure created; safe to call in any state, repeatedly."""
        self._active = False
        self._stop_work('node cleaning up')
        if self._action is not None:
            self._action.destroy()
            self._action = None
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        worker_stopped = True
        if self._core is not None:
            if not self._core.close(timeout=self._param('deactivate_timeout_s') + 5):
                worker_stopped = False
                self.get_logger().error(
                    'chat worker thread did not stop (inside a long llama.cpp call?): the '
                    'model is freed when it ends, not now (that would crash the process)')
            self._core.sessions.clear()
            self._core = None
        if self._engine is not None:
            before = rss_mb()
            if worker_stopped:  # else the worker still holds (and later frees) the engine
                self._engine.close()
                trim_heap()
                self.get_logger().info(f'model released: RSS {before:.0f} -> {rss_mb():.0f} MB')
            self._engine = None

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
        self._inflight += 1
        try:
            reply = self._refusal()
            if reply is None:
                job = self._core.submit(_chat_request(request), self._generation_settings())
                reply = await self._await_job(job)
            _fill(response, reply)
            return response
        finally:
            self._inflight -= 1

    def _on_goal(self, goal) -> GoalResponse:
        if self._active and self._core is not None:
            return GoalResponse.ACCEPT
        self.stats.refused()
        self.get_logger().warning(f'goal rejected: node is {self.lifecycle_state}, not serving')
        return GoalResponse.REJECT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        job = self._goal_jobs.get(bytes(goal_handle.goal_id.uuid))
        core = self._core
        if job is not None and core is not None:
            core.cancel(job, CLIENT_CANCEL)  # a queued goal is answered now, not after the
            # running one (see _cancel_accepted for the CANCELING state this races with)
        return CancelResponse.ACCEPT

    @staticmethod
    def _cancel_accepted(goal_handle, job) -> bool:
        """True if the client's cancel request was accepted. rclpy moves the goal to
        CANCELING only after _on_cancel returns, while a queued job cancelled in _on_cancel is
        finished inside it: wait (briefly, bounded) for that state change."""
        if job is not None and job.cancel_reason == CLIENT_CANCEL:
            deadline = time.monotonic() + 2.0
            while not goal_handle.is_cancel_requested and time.monotonic() < deadline:
                time.sleep(0.001)
        return goal_handle.is_cancel_requested

    async def _on_execute(self, goal_handle):
        self._inflight += 1
        key = bytes(goal_handle.goal_id.uuid)
        try:
            result = LLMChatAction.Result()
            reply = self._refusal()
            job = None
            if reply is None and goal_handle.is_cancel_requested:
                reply = ChatReply(error='cancelled before it started', finish_reason='cancelled')
            if reply is None:
                feedback = FeedbackBatcher(
                    lambda text: goal_handle.publish_feedback(
                        LLMChatAction.Feedback(partial=text)),
                    self._param('feedback_min_interval_s'))
                job = self._core.submit(_chat_request(goal_handle.request),
                                        self._generation_settings(), feedback.add)
                self._goal_jobs[key] = job
                if goal_handle.is_cancel_requested:  # cancelled while we were submitting
                    self._core.cancel(job, CLIENT_CANCEL)
                reply = await self._await_job(job)
                feedback.flush()  # the generation is over: send what is still batched
            _fill(result, reply)
            result.time_to_first_token_s = float(reply.time_to_first_token_s)
            if reply.finish_reason == 'cancelled' and self._cancel_accepted(goal_handle, job):
                goal_handle.canceled()
            elif reply.success:
                goal_handle.succeed()
            else:
                goal_handle.abort()
            return result
        finally:
            self._goal_jobs.pop(key, None)
            self._inflight -= 1

    # ================================================================ diagnostics
    def snapshot(self) -> dict:
        core, engine = self._core, self._engine
        rss = rss_mb()
        snap = dict(self.stats.snapshot())
        snap.update(
            lifecycle_state=self.lifecycle_state,
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
            active_sessions=len(core.sessions) if core else 0,
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
        logger = self.get_logger()
        {'error': logger.error, 'warn': logger.warning}.get(level, logger.info)(message)


class FeedbackBatcher:
    """Publishes streamed text as feedback: every piece at once (interval 0, the default), or
    at most one message per ``interval`` seconds carrying everything generated since the last
    one (lower client CPU for fast models). ``flush`` sends the rest; nothing is ever lost,
    so the partials still concatenate to the reply."""

    def __init__(self, publish, interval: float):
        self._publish = publish
        self._interval = interval
        self._pending = []
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, piece: str) -> None:
        with self._lock:
            self._pending.append(piece)
            now = time.monotonic()
            if self._interval > 0 and now - self._last < self._interval:
                return
            self._last = now
            text, self._pending = ''.join(self._pending), []
            self._publish(text)

    def flush(self) -> None:
        with self._lock:
            text, self._pending = ''.join(self._pending), []
            if text:
                self._publish(text)


def _chat_request(msg) -> ChatRequest:
    return ChatRequest(prompt=msg.prompt, session_id=msg.session_id,
                       reset_session=msg.reset_session, response_format=msg.response_format,
                       json_schema=msg.json_schema)


def _fill(msg, reply: ChatReply) -> None:
    msg.response = reply.response
    msg.success = reply.success
    msg.error = reply.error
    msg.finish_reason = reply.finish_reason
    msg.prompt_tokens = int(reply.prompt_tokens)
    msg.completion_tokens = int(reply.completion_tokens)
    msg.latency_s = float(reply.latency_s)


def main(args=None):
    rclpy.init(args=args)
    node = ChatNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._teardown()  # free the model and join the worker whatever the state
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
