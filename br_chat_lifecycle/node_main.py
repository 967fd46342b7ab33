# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Run a node until it is told to stop: the ``main`` of every executable of the package.

``run(make_node, ...)`` initialises rclpy, creates the node, spins it and shuts everything
down. With ``on_signal`` it handles SIGINT/SIGTERM itself instead of rclpy: rclpy's handler
would shut the context down at once, so a node could not answer the requests in flight. The
executor then keeps spinning in a thread while ``on_signal(node, 'SIGTERM')`` runs (answer,
send, free), and only then is everything shut down.
"""
import signal
import threading
from typing import Callable, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def run(make_node: Callable[[], object], args=None,
        make_executor: Optional[Callable[[], object]] = None,
        on_signal: Optional[Callable[[object, str], None]] = None,
        on_exit: Optional[Callable[[object], None]] = None,
        spin: Optional[Callable[[object, object], None]] = None) -> None:
    """
    Create the node with ``make_node`` and spin it until shutdown.

    ``make_executor``: default a 4-thread MultiThreadedExecutor. ``on_signal(node, name)``: handle
    SIGINT/SIGTERM (see the module text); without it rclpy's own handler stops the node.
    ``on_exit(node)``: teardown before the node is destroyed (an external shutdown, or no
    ``on_signal``). ``spin(executor, node)``: replaces ``executor.spin()``.
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

    def spin_until_shutdown():
        try:
            (spin or (lambda ex, _node: ex.spin()))(executor, node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            stop.set()

    try:
        if on_signal is None:
            spin_until_shutdown()
        else:
            def handler(signum, frame):
                if not received:
                    received.append(signal.Signals(signum).name)
                stop.set()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, handler)
            spinner = threading.Thread(target=spin_until_shutdown, name='executor',
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
