"""Connect the audio of two sessions: relay packets untouched when both sides agreed the same codec,
transcode through engine frames when they did not.

Relay is the fast path a 500-calls-per-core budget needs: the endpoint sends each packet on as it
came, only renumbering a telephone-event payload type when the two sides chose different numbers.
Transcoding decodes each packet as it arrives (no clock, no added delay), resamples when the rates
differ, and sends it with the other side's own sequence numbers and timestamps; RFC 4733 events are
re-sent in the other stream, their start timestamp moved into that stream's clock (§2.5.1.2: all
packets of one event share the event's start timestamp, so one mapping per event is enough).
"""

from __future__ import annotations

from voxswitch.media.session import MediaSession


class MediaBridge:
    def __init__(self, a: MediaSession, b: MediaSession) -> None:
        self.a, self.b = a, b
        self.transcoding = False
        self.connected = False

    def connect(self) -> None:
        a, b = self.a, self.b
        if a.terms is None or b.terms is None:
            raise RuntimeError("both sessions need negotiated terms before they are bridged")
        self.disconnect()
        self.transcoding = not a.terms.same_format(b.terms)
        if self.transcoding:
            a.forward, b.forward = b.send_frame, a.send_frame
            a.forward_event, b.forward_event = _EventMapper(b), _EventMapper(a)
            for s in (a, b):
                s.endpoint.relay_to = None
                s.endpoint.consume_while_relaying = False
        else:
            a.endpoint.relay_to, b.endpoint.relay_to = b.endpoint, a.endpoint
            _map_event_types(a, b)
            _map_event_types(b, a)
        self.connected = True

    def disconnect(self) -> None:
        for s in (self.a, self.b):
            s.endpoint.relay_to = None
            s.endpoint.relay_pt_map.clear()
            s.forward = None
            s.forward_event = None
        self.connected = False

    def reconnect_if_changed(self) -> None:
        """After a re-INVITE changed either side's codec, pick relay or transcoding again."""
        if self.connected and self.a.terms is not None and self.b.terms is not None:
            if self.transcoding == self.a.terms.same_format(self.b.terms):
                self.connect()
            else:
                _map_event_types(self.a, self.b)
                _map_event_types(self.b, self.a)


def _map_event_types(src: MediaSession, dst: MediaSession) -> None:
    """What `src`'s peer sends as telephone-event goes to `dst`'s peer under the number it expects."""
    src.endpoint.relay_pt_map.clear()
    if src.terms is None or dst.terms is None:
        return
    theirs, ours = src.terms.dtmf_recv_pt, dst.terms.dtmf_send_pt
    if theirs is not None and ours is not None and theirs != ours:
        src.endpoint.relay_pt_map[theirs] = ours


class _EventMapper:
    """Re-times one stream's telephone events into another stream's clock, one mapping per event."""

    def __init__(self, to: MediaSession) -> None:
        self.to = to
        self._events: dict[int, int] = {}

    def __call__(self, timestamp: int, payload: bytes, marker: bool) -> None:
        mapped = self._events.get(timestamp)
        if mapped is None:
            mapped = self.to.endpoint.sender.timestamp
            self._events = {timestamp: mapped}  # only the event in progress matters
        self.to.relay_event(mapped, payload, marker)
