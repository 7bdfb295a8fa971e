"""The one error the SIP message layer raises: what was wrong, and how (or whether) to answer it.

A server that cannot accept a request still owes the sender a final response when it can build one
(RFC 3261 §8.2: 400 for a malformed request, 505 for an unsupported version, 416 for an unknown
URI scheme, 413/414/513 for sizes). `SipParseError` therefore carries the status code, a reason
phrase that names the fault ("Bad Request - Missing Call-ID") and, when the header section could
be split, the partially parsed message. `can_respond` says whether an answer can be built: only
for a request other than ACK (§17.1.1.3: ACK is never answered) that carries a Via to copy back
(§8.2.6.1), even a malformed one, since RFC 4475 asks for a 400 to requests whose Via, CSeq, From,
To or Call-ID is broken or missing (§3.1.2.1, §3.1.2.4, §3.3.1). Everything else (responses,
garbage, unframeable streams) is dropped, as RFC 4475 §3.1.2.19 asks for bigcode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voxswitch.sip.message import SipMessage

__all__ = ["SipParseError"]


class SipParseError(Exception):
    """A message, or a part of one, that the SIP layer refuses; `reason` names the problem."""

    def __init__(
        self,
        status: int = 400,
        reason: str = "Bad Request",
        *,
        detail: str = "",
        message: SipMessage | None = None,
        can_respond: bool = False,
    ) -> None:
        super().__init__(f"{status} {reason}" + (f" ({detail})" if detail else ""))
        self.status = status
        self.reason = reason
        self.detail = detail
        self.message = message
        self.can_respond = can_respond
