"""Someone's server on this machine (--inferlab-server-url on loopback): its process is found by the
port it listens on, so its CPU counts as the case's own, not as another process's interference."""

import os
import socket

from pytest_inferlab.ground.processes import loopback_server_pid


def test_the_process_listening_on_a_loopback_port_is_found_and_another_host_is_not():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert loopback_server_pid(f"http://127.0.0.1:{port}") == os.getpid()
        assert loopback_server_pid(f"http://localhost:{port}/v1") == os.getpid()
        assert loopback_server_pid(f"http://10.1.2.3:{port}") is None  # another machine: not ours to count
    assert loopback_server_pid(f"http://127.0.0.1:{port}") is None  # nobody listens any more
