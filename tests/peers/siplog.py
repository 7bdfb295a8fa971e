"""SIP messages out of text: one message, or all of a SIPp ``-trace_msg`` log, a PJSIP log, or
baresip's SIP trace (``baresip -s``).

Just enough parsing for assertions in tests (start line, headers by name, body); the real parser
is ``voxswitch.sip``, which these helpers deliberately do not use, so a bug there cannot hide
itself in an interop test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# RFC 3261 7.3.3 compact header forms.
_COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "u": "allow-events",
}


def _canonical(name: str) -> str:
    name = name.strip().lower()
    return _COMPACT.get(name, name)


@dataclass
class SipMessage:
    """One SIP request or response; ``direction`` and ``transport`` are set for trace-log entries."""

    start_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    direction: str = ""  # "sent" or "received" (from the tracing peer's point of view)
    transport: str = ""  # "UDP", "TCP", "TLS" ...
    source: str = ""  # host:port, where the log says (PJSIP: the far end only; baresip: both)
    destination: str = ""

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        """The request method, or for a response the method of its CSeq."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        cseq = self.header("CSeq") or ""
        return cseq.split()[-1] if cseq else ""

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        return int(self.start_line.split()[1])

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive, compact forms too), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        wanted = _canonical(name)
        return [v for n, v in self.headers if _canonical(n) == wanted]

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> int:
        cseq = self.header("CSeq") or ""
        return int(cseq.split()[0]) if cseq[:1].isdigit() else -1

    @property
    def sent_by(self) -> str:
        """host:port of the top Via (RFC 3261 20.42), lower case; "" without a Via."""
        via = self.header("Via") or ""
        first = via.split(",", 1)[0].split(";", 1)[0].split()
        return first[1].lower() if len(first) >= 2 else ""


def parse_message(text: str) -> SipMessage:
    """Parse one SIP message; line ends may be CRLF or LF, folded header lines are joined."""
    head, sep, body = text.replace("\r\n", "\n").lstrip("\n").partition("\n\n")
    lines = head.split("\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return SipMessage(start_line=lines[0].strip(), headers=headers, body=body if sep else "")


_SIPP_ENTRY = re.compile(
    r"^-{20,} [^\n]*\n(?P<transport>\w+) message (?P<direction>sent|received)[^\n]*\n\n", re.MULTILINE
)


def parse_sipp_message_log(text: str) -> list[SipMessage]:
    """Every message in the text of a SIPp ``-trace_msg`` log, in order."""
    matches = list(_SIPP_ENTRY.finditer(text))
    messages = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        chunk = text[m.end() : end].strip("\n")
        if not chunk:
            continue
        msg = parse_message(chunk)
        msg.direction = m.group("direction")
        msg.transport = m.group("transport")
        messages.append(msg)
    return messages


def read_sipp_message_log(path: Path) -> list[SipMessage]:
    """Like :func:`parse_sipp_message_log`, for a file that may not exist yet (then: no messages)."""
    try:
        return parse_sipp_message_log(path.read_text(errors="replace"))
    except FileNotFoundError:
        return []


_PJSIP_ENTRY = re.compile(
    r"(?P<dir>TX|RX) \d+ bytes (?:Request|Response) msg \S+ \(\S+\) (?:to|from) (?P<transport>\w+) "
    r"(?P<peer>\S+):\n(?P<text>.*?)\n--end msg--",
    re.DOTALL,
)


def parse_pjsip_log(text: str) -> list[SipMessage]:
    """Every SIP message of a PJSIP log (level 4 or more: ``TX ... msg`` / ``RX ... msg`` entries).

    ``source`` (RX) or ``destination`` (TX) is the far end as PJSIP names it."""
    messages = []
    for m in _PJSIP_ENTRY.finditer(text):
        msg = parse_message(m.group("text"))
        sent = m.group("dir") == "TX"
        msg.direction = "sent" if sent else "received"
        msg.transport = m.group("transport").upper()
        if sent:
            msg.destination = m.group("peer")
        else:
            msg.source = m.group("peer")
        messages.append(msg)
    return messages


# baresip's sip_trace_handler (src/ua.c, 1.0): "\x1b[36;1m#\n<TP> <src> -> <dst>\n<message>\x1b[;m\n".
_BARESIP_ENTRY = re.compile(
    r"\x1b\[36;1m#\n(?P<transport>\w+) (?P<src>\S+) -> (?P<dst>\S+)\n(?P<text>.*?)\x1b\[;m", re.DOTALL
)


def parse_baresip_trace(text: str, own: set[str]) -> list[SipMessage]:
    """Every SIP message of a baresip ``-s`` trace (its stdout), in order.

    The trace does not say which way a message went, and over TCP/TLS its own end is a connection's
    ephemeral port, so ``direction`` comes from the Via: baresip's requests carry its listening
    address (one of ``own``, "host:port") as top Via, and responses to them come back with it."""
    messages = []
    for m in _BARESIP_ENTRY.finditer(text):
        msg = parse_message(m.group("text"))
        msg.transport = m.group("transport").upper()
        msg.source, msg.destination = m.group("src"), m.group("dst")
        ours = msg.sent_by in own
        msg.direction = "sent" if ours == msg.is_request else "received"
        messages.append(msg)
    return messages
