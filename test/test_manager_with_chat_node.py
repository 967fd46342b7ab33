# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The lifecycle manager driving our chat node and a plain lifecycle node together.

Order: startup = configure all (chat node first), then activate all; pause/reset/shutdown in
reverse. Checked through the nodes' states (get_state), the plain node's transition record
and the chat node's behaviour (it answers chat only when the manager has it active).
"""

from chat_harness import ChatNodeProcess, GraphClient  # noqa: E402
from ros_helpers import (RosClient, start_lifecycle_manager,  # noqa: E402
                         start_lifecycle_test_node, unique_name, wait_until)
from tiny_gguf import write_tiny_model  # noqa: E402


def test_manager_drives_chat_node_and_plain_node(tmp_path, procs):
    model = str(write_tiny_model(tmp_path / 'tiny.gguf'))
    record = tmp_path / 'record.txt'
    record.touch()
    chat = ChatNodeProcess({'model_path': model, 'n_ctx': 512, 'max_tokens': 16})
    procs.append(chat)
    plain = start_lifecycle_test_node(unique_name('plain'), record_file=str(record))
    procs.append(plain)
    manager = start_lifecycle_manager(unique_name('lm'), [f'/{chat.name}', plain.fqn],
                                      transition_timeout_s=60.0, heartbeat_period_s=0.5)
    procs.append(manager)
    ros = RosClient()
    chat_client = GraphClient()
    try:
        def trigger(op):
            response = ros.trigger(f'{manager.fqn}/{op}', timeout=90.0)
            assert response is not None, f'{op}: no response\n{manager.output()}'
            assert response.success, f'{op}: {response.message}\n{manager.output()}'
            return response

        trigger('startup')
        assert ros.get_state(f'/{chat.name}') == 'active'
        assert ros.get_state(plain.fqn) == 'active'
        reply = chat_client.chat('hello from the manager test')
        assert reply.success, reply.error
        assert ros.trigger(f'{manager.fqn}/is_active').success

        trigger('pause')       # reverse order: plain first, then the chat node
        assert ros.get_state(f'/{chat.name}') == 'inactive'
        assert ros.get_state(plain.fqn) == 'inactive'
        reply = chat_client.chat('are you there?')
        assert not reply.success and 'inactive' in reply.error

        trigger('resume')
        assert chat_client.chat('back again').success

        trigger('reset')       # back to unconfigured: the model is released
        assert ros.get_state(f'/{chat.name}') == 'unconfigured'
        assert 'model released' in chat.log_text()

        trigger('startup')
        assert chat_client.chat('after reset').success
        trigger('shutdown')
        assert ros.get_state(f'/{chat.name}') == 'finalized'
        assert ros.get_state(plain.fqn) == 'finalized'
        lines = [tuple(line.split()) for line in record.read_text().splitlines() if line]
        assert [t for _, t in lines] == [
            'configure', 'activate', 'deactivate', 'activate', 'deactivate', 'cleanup',
            'configure', 'activate', 'deactivate', 'cleanup', 'shutdown'], lines
    finally:
        chat_client.close()
        ros.close()


def test_manager_reports_failed_chat_node_configure(tmp_path, procs):
    chat = ChatNodeProcess({'model_path': str(tmp_path / 'no_such_model.gguf')})
    procs.append(chat)
    plain = start_lifecycle_test_node(unique_name('plain'))
    procs.append(plain)
    manager = start_lifecycle_manager(unique_name('lm'), [plain.fqn, f'/{chat.name}'])
    procs.append(manager)
    ros = RosClient()
    try:
        response = ros.trigger(f'{manager.fqn}/startup', timeout=90.0)
        assert response is not None and not response.success
        assert chat.name in response.message and 'configure' in response.message
        # The plain node, configured before the failure, is not left half-up silently.
        assert wait_until(lambda: ros.get_state(plain.fqn) == 'unconfigured', 'unconfigured',
                          15, 0.1, raise_=False)
        assert 'no_such_model.gguf' in chat.log_text()
    finally:
        ros.close()
