"""Test helpers that drive real third-party SIP peers on loopback.

Each peer is a separate process that the helper starts, talks to and always stops:

- :mod:`tests.peers.sipp` -- SIPp scenarios (built-in or the XML files in ``scenarios/``), run in the
  foreground with a timeout or in the background next to another peer; exit code and final
  statistics parsed into :class:`~tests.peers.sipp.SippResult`.
- :mod:`tests.peers.pjsua` -- PJSIP (``pjsua2-python``) user agents in a child Python process
  (:mod:`tests.peers.pjsua_agent`), driven by JSON lines; events stream back.
- :mod:`tests.peers.baresip` -- baresip with a private config directory, driven over its
  ``ctrl_tcp`` netstring-JSON socket.

Supporting modules: :mod:`~tests.peers.ports` (free loopback ports), :mod:`~tests.peers.processes`
(peers in their own session, killed even if the test run dies), :mod:`~tests.peers.availability`
(fail under CI, skip otherwise, when a peer is missing), :mod:`~tests.peers.digest` (check a digest
``Authorization`` the way a registrar would, for algorithms SIPp cannot verify),
:mod:`~tests.peers.tls` (a throwaway certificate for TLS transports), :mod:`~tests.peers.audio`
(WAV tones and energy measures) and :mod:`~tests.peers.siplog` (SIP messages out of trace logs).

``docs/interop-peers.md`` lists what each peer supports and how the test command installs it.
"""
