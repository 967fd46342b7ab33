# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Run a node until it is told to stop: the ``main`` of every executable of the package.

``run(make_node, ...)`` initialises rclpy, creates the node, spins it and shuts everything
down. With ``on_signal`` it handles SIGINT/SIGTERM itself instead of rclpy: rclpy's handler
would shut the context down at once, so a node could not answer the requests in flight. The
executor then keeps spinning in a thread while ``on_signal(node, 'SIGTERM')`` runs (answer,
send, free), and only then is everything shut down.

``spin_until_shutdown(executor, context, logger)`` spins until shutdown and survives what
rclpy's executor re-raises (see its docstring): every executable of the package and
client.ChatClient's background thread spin with it. A callback that raises is logged with its
traceback and the node keeps serving (rclpy sends no response for that one request) - a robot's
node should not die because one request failed; our callbacks catch their own errors anyway.
"""
import os
import signal
import threading
import traceback
from typing import Callable, Optional

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def entity_in_flux(e: BaseException) -> bool:
    """
    Tell whether ``e`` is rclpy meeting an entity another thread is creating or destroying.

    Destroyed: ``InvalidHandle`` or rcl's "pointer is invalid". Being created: rclpy's
    ActionClient/ActionServer register themselves with the node before their ``__init__`` has
    set ``_lock``, so an executor building its wait set at that moment gets an AttributeError
    from inside ``rclpy/action`` (seen in test_client_spin about once in ten runs). Both are
    harmless: the next wait set is built from what exists then.
    """
    if isinstance(e, InvalidHandle) or 'pointer is invalid' in str(e):
        return True
    if isinstance(e, AttributeError) and e.__traceback__ is not None:
        frames = traceback.extract_tb(e.__traceback__)
        building_wait_set = any(f.name == '_wait_for_ready_callbacks' for f in frames)
        in_rclpy_action = '/rclpy/action/' in frames[-1].filename.replace(os.sep, '/')
        return building_wait_set and in_rclpy_action     # not a user callback's error
    return False


def spin_until_shutdown(executor, context, logger) -> None:
    """
    Spin ``executor`` until it or ``context`` is shut down, surviving a failing callback.

    rclpy's MultiThreadedExecutor re-raises from ``spin()`` whatever a callback raised, and also
    raises when another thread destroys an action client or server while the executor builds
    its wait set (rclpy skips entering the destroyed handle but still adds it: ``RCLError:
    Failed to add 'rcl_action_client_t' to wait set: action client pointer is invalid``;
    test_client_spin reproduces it; ``entity_in_flux`` has this and the creating case). Our
    nodes destroy their action server at cleanup and ChatClient destroys action clients at
    close, so this can happen to any of them. A spin thread would end there: a node would
    exit, a client's thread would die silently and every later call would go unanswered (seen:
    a test module's whole graph, on a loaded machine).
    Here spinning goes on: an entity in flux is logged at debug level, any other exception as
    an error with its traceback.
    """
    while context.ok():
        try:
            executor.spin()
            return                       # the executor was shut down
        except ExternalShutdownException:
            return
        except Exception as e:  # noqa: BLE001 - see the docstring
            if not context.ok():
                return                   # the context was shut down (close)
            if entity_in_flux(e):
                logger.debug(f'an entity was created or destroyed while in use: {e!r}')
            else:
                logger.error('a callback raised (spinning goes on):\n'
                             + ''.join(traceback.format_exception(e)))


def run(make_node: Callable[[], object], args=None,
        make_executor: Optional[Callable[[], object]] = None,
        on_signal: Optional[Callable[[object, str], None]] = None,
        on_exit: Optional[Callable[[object], None]] = None) -> None:
    """
    Create the node with ``make_node`` and spin it until shutdown.

    ``make_executor``: default a 4-thread MultiThreadedExecutor. ``on_signal(node, name)``: handle
    SIGINT/SIGTERM (see the module text); without it rclpy's own handler stops the node.
    ``on_exit(node)``: teardown before the node is destroyed (an external shutdown, or no
    ``on_signal``).
    """
    options = SignalHandlerOptions.NO if on_signal else None
    rclpy.init(args=args, signal_handler_options=options)
    try:
        node = make_node()
    except BaseException:
        rclpy.try_shutdown()
        raise
    executor = make_executor() if make_executor else MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    received = []
    stop = threading.Event()
    spinner = None

    def spin_then_stop():
        try:
            spin_until_shutdown(executor, node.context, node.get_logger())
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            stop.set()

    try:
        if on_signal is None:
            spin_then_stop()
        else:
            def handler(signum, frame):
                if not received:
                    received.append(signal.Signals(signum).name)
                stop.set()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, handler)
            spinner = threading.Thread(target=spin_then_stop, name='executor',
                                       daemon=True)
            spinner.start()
            while not stop.wait(1.0):  # wakes for signals at once (the handler sets it)
                pass
        if received:
            on_signal(node, received[0])
        elif on_exit is not None:
            on_exit(node)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
        if spinner is not None:
            spinner.join(2.0)
