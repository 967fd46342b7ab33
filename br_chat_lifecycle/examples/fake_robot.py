# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
A pretend robot (executable ``fake_robot``) whose services the tool_bridge exposes as tools.

Services (under the node's name, e.g. /fake_robot/set_light):
  ~/set_light  jobot_ai_msgs/srv/SetLight   bool on, string room   -> success, message
  ~/move_to    jobot_ai_msgs/srv/MoveTo     string place           -> success, message
               (takes ``move_duration_s`` seconds; an unknown place fails)
  ~/say        jobot_ai_msgs/srv/Say        string text            -> success, message
  ~/dock       std_srvs/srv/Trigger         (no arguments)         -> success, message
Every call is logged (``CALL <service> <request JSON>``) and published, when it arrives and
before it is handled, as JSON {"service", "request"} on ``~/calls`` (std_msgs/String,
reliable, transient local, depth 100: a late subscriber still gets the recent calls).

Parameters: ``places`` (known places), ``move_duration_s`` (simulated travel time) and
``fault_injection`` (service names, e.g. ['say'], whose handler raises instead of answering:
rclpy then sends no response; for testing how callers cope). A handler that raises does not
stop the node: node_main's spin logs the exception and goes on.
"""
import json
import threading
import time

from jobot_ai_msgs.srv import MoveTo, Say, SetLight
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from .. import node_main
from ..ros_schema import message_to_json

DEFAULT_PLACES = ['kitchen', 'living room', 'bedroom', 'bathroom', 'hall', 'charging dock']
CALLS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)


class InjectedFault(RuntimeError):
    """Raised by a handler listed in the fault_injection parameter."""


class FakeRobot(Node):

    def __init__(self, node_name: str = 'fake_robot', **kwargs):
        super().__init__(node_name, **kwargs)
        self.declare_parameter('places', DEFAULT_PLACES, ParameterDescriptor(
            description='Places move_to knows; any other place fails.'))
        self.declare_parameter('move_duration_s', 0.5, ParameterDescriptor(
            description='Simulated travel time of move_to, in seconds (>= 0).'))
        self.declare_parameter('fault_injection', [''], ParameterDescriptor(
            description='Services (set_light, move_to, say, dock) whose handler raises '
                        'instead of answering, for testing callers; empty strings ignored.'))
        self._lock = threading.Lock()
        self.lights = {}            # room -> on
        self.place = 'charging dock'
        self.docked = True
        self.spoken = []
        self._calls = self.create_publisher(String, '~/calls', CALLS_QOS)
        group = ReentrantCallbackGroup()   # a slow move_to does not hold up the others
        for srv_type, name, handler in ((SetLight, 'set_light', self._set_light),
                                        (MoveTo, 'move_to', self._move_to),
                                        (Say, 'say', self._say),
                                        (Trigger, 'dock', self._dock)):
            self.create_service(srv_type, f'~/{name}', self._wrap(name, handler),
                                callback_group=group)
        self.get_logger().info(
            f'fake robot ready: services {self.resolve_service_name("~/set_light")}, '
            f'~/move_to, ~/say, ~/dock; calls published on '
            f'{self.resolve_topic_name("~/calls")}')

    def _wrap(self, name, handler):
        def callback(request, response):
            record = {'service': name, 'request': message_to_json(request)}
            self.get_logger().info(f'CALL {name} {json.dumps(record["request"])}')
            self._calls.publish(String(data=json.dumps(record)))
            faults = [f for f in self.get_parameter('fault_injection').value if f]
            if name in faults:
                self.get_logger().error(f'FAULT {name}: raising (fault_injection parameter); '
                                        'rclpy sends no response')
                raise InjectedFault(f'{name}: injected fault (fault_injection parameter)')
            response = handler(request, response)
            self.get_logger().info(f'DONE {name} success={response.success} '
                                   f'message={response.message!r}')
            return response
        return callback

    def _set_light(self, request, response):
        room = request.room.strip() or self.place
        with self._lock:
            self.lights[room] = request.on
        response.success = True
        response.message = f'light in {room} is {"on" if request.on else "off"}'
        return response

    def _move_to(self, request, response):
        place = request.place.strip()
        places = [p for p in self.get_parameter('places').value if p]
        if place not in places:
            response.success = False
            response.message = f'unknown place {place!r} (known: {", ".join(places)})'
            return response
        time.sleep(max(0.0, float(self.get_parameter('move_duration_s').value)))
        with self._lock:
            self.place, self.docked = place, False
        response.success = True
        response.message = f'arrived at {place}'
        return response

    def _say(self, request, response):
        with self._lock:
            self.spoken.append(request.text)
        response.success = True
        response.message = f'said {request.text!r}'
        return response

    def _dock(self, request, response):
        with self._lock:
            self.place, self.docked = 'charging dock', True
        response.success = True
        response.message = 'docked and charging'
        return response


def main(args=None):
    """Run the fake robot until shutdown."""
    node_main.run(FakeRobot, args)


if __name__ == '__main__':
    main()
