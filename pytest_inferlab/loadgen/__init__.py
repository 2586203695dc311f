"""The load generator: what sends a round of requests to a server and times what comes back.

Below the engines and the batchers (the server engine and the ``server`` batcher both drive it, so
the serving path goes one way): the client (``client.py``: one event loop, a connection pool opened
before the clock), stream parsing and token counts (``sse.py``), the server's own ``/metrics``
(``telemetry.py``), a round's shares and their assembly into a trace (``rounds.py``), worker
processes that share a round (``processes.py``), over-saturation (``saturation.py``) and why a
request was not served (``unserved.py``). It knows specs and the trace types, nothing above.
"""
