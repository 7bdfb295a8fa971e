"""SIP dialogs (RFC 3261 §12-§15), sans-I/O.

Theory of operation
-------------------
A dialog is the peer-to-peer relationship that an INVITE, SUBSCRIBE or REFER sets up (§12): an
identifier (Call-ID, local tag, remote tag), the local and remote sequence numbers, the local and
remote URIs, the remote target and the route set. `Dialog` holds that state and is one small
machine whose moves are the table `TRANSITIONS` (anything else raises `IllegalTransition`)::

    EARLY ──2xx──▶ CONFIRMED ──BYE sent or received, 481/408 to a request──▶ TERMINATED
      └────────non-2xx final, BYE, 481/408─────────────────────────────────────▲

- Creating: `Dialog.uac(request, response)` from a request we sent and the 1xx-with-To-tag (early)
  or 2xx (confirmed) that came back (§12.1.2); `Dialog.uas(request, response)` from a request we
  received and the response we send (§12.1.1); `Dialog.from_notify(subscribe, notify)` for a
  subscription whose first NOTIFY beats the 2xx to its SUBSCRIBE (RFC 6665 §4.1.2.4).
- Sending (§12.2.1.1): `request()` and the helpers `bye`, `reinvite`, `update` (RFC 3311), `info`
  (RFC 6086), `refer` (RFC 3515, with RFC 3891 Replaces), `subscribe`/`notify` (RFC 6665) and
  `message` (RFC 3428); `ack` for a 2xx (§13.2.2.4). Every builder takes the Via value from the
  transport shell (it knows the local address and makes the branch) and returns a `Request` for
  the transaction layer. `build_cancel` (§9.1) works on the INVITE, not on a dialog.
- Receiving (§12.2.2): `receive_request` checks the remote CSeq, refreshes the remote target, ends
  the dialog on BYE, detects re-INVITE glare (§14.2) and returns a `Verdict` that the TU turns into
  a response; `receive_response` applies §12.2.1.2 and §13.2.2.4 to responses to our requests;
  `responded` tells a UAS dialog what it answered.
- Matching: `DialogSet` maps `DialogId`s to dialogs, makes UAC dialogs from responses (a forked
  INVITE makes several, §13.2.2.4), UAS dialogs from the responses we send, and answers requests
  for unknown dialogs with 481 (§12.2.2). `surplus_dialogs` / `release_surplus` tell a UAC that
  wants one answer which forked dialogs to ACK and then BYE.

Out of scope: reliable provisional responses and PRACK (RFC 3262), INVITE session timers
(RFC 4028), the offer/answer state (the TU's, with `voxswitch.sip.sdp`), and the RFC 6141 refinements
of target refresh (the remote target changes when a refresh is received, as §12.2.2 says, and is not
rolled back if the TU then refuses the request). Nothing here reads a clock or touches a socket;
the only randomness is an initial CSeq (§8.1.1.5) and the Retry-After of §14.2.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, NamedTuple

from voxswitch.sip.headers import MAX_CSEQ, NameAddr, parse_params, unquote
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.transaction import IllegalTransition
from voxswitch.sip.uri import NO_PARAMS, SipUri, Uri, parse_uri

__all__ = [
    "ACCEPT",
    "DIALOG_CREATING",
    "DROP",
    "MAX_FORWARDS",
    "TARGET_REFRESH",
    "TRANSITIONS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogSet",
    "DialogState",
    "ForkRelease",
    "IllegalTransition",
    "Role",
    "Verdict",
    "build_cancel",
    "new_tag",
    "parse_replaces",
    "release_surplus",
    "replaces_value",
    "surplus_dialogs",
]

MAX_FORWARDS = "70"  # §8.1.1.6

# Requests that create a dialog outside of one: INVITE (§12.1), SUBSCRIBE (RFC 6665 §4.1.2.1) and
# REFER, whose implicit subscription is a dialog usage (RFC 3515 §2.4.4).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})

# Target refresh requests: their Contact replaces the remote target. re-INVITE (§12.2), UPDATE
# (RFC 3311 §5.1), SUBSCRIBE and NOTIFY (RFC 6665).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})

# Requests whose Contact the sender must supply: the target refresh requests and REFER (RFC 3515 §2.4.1).
_WITH_CONTACT = TARGET_REFRESH | {"REFER"}

_AUTH_HEADERS = ("Authorization", "Proxy-Authorization")


class DialogError(Exception):
    """The TU asked for something a dialog cannot do (a bug in the caller, never a peer's doing)."""


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Role(Enum):
    """Which side created the dialog: we sent the dialog-creating request (UAC) or received it (UAS)."""

    UAC = "uac"
    UAS = "uas"


_E, _C, _T = DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED
TRANSITIONS: frozenset[tuple[DialogState, DialogState]] = frozenset(
    {
        (_E, _C),  # a 2xx to the dialog-creating request (§12.1, §13.2.2.4)
        (_E, _T),  # a non-2xx final response (§12.3), a BYE (§15), 481/408 (§12.2.1.2)
        (_C, _T),  # BYE (§15), 481/408 (§12.2.1.2), the last subscription ends (RFC 6665 §4.4.1)
    }
)


class DialogId(NamedTuple):
    """§12: Call-ID, local tag, remote tag. An RFC 2543 peer that sent no tag has remote tag ``""``."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_request(cls, request: Request) -> DialogId:
        """The id of the dialog a request we *received* belongs to: To tag local, From tag remote (§12.2.2)."""
        return cls(request.call_id, request.to.tag or "", request.from_.tag or "")

    @classmethod
    def of_response(cls, response: Response) -> DialogId:
        """The id of the dialog a response to a request we *sent* belongs to (§12.2.1.2)."""
        return cls(response.call_id, response.from_.tag or "", response.to.tag or "")

    def reversed(self) -> DialogId:
        """The same dialog as the peer names it."""
        return DialogId(self.call_id, self.remote_tag, self.local_tag)


def new_tag() -> str:
    """A From or To tag: cryptographically random, at least 32 bits (§19.3)."""
    return secrets.token_hex(8)


# --- verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a dialog says about a request it received: accept it (the TU answers), or refuse it.

    A refusal with a `status` is answered with `response(request)`; one without (`DROP`, an ACK
    that belongs nowhere) is silently dropped, since an ACK is never answered (§17.1.1.3).
    """

    accepted: bool
    status: int | None = None
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def response(self, request: Request) -> Response | None:
        """The refusal as a response to `request`; None when accepted, dropped or an ACK."""
        if self.accepted or self.status is None or request.method == "ACK":
            return None
        return build_response(request, self.status, self.reason, headers=self.headers)


ACCEPT = Verdict(True)
DROP = Verdict(False)
_NO_DIALOG = Verdict(False, 481, "Call/Transaction Does Not Exist")  # §12.2.2


# --- helpers --------------------------------------------------------------------------------------


def _request_uri(uri: Uri) -> Uri:
    """`uri` as it may appear in a Request-URI: no headers, no ``method`` parameter (§19.1.1 Table 1)."""
    if isinstance(uri, SipUri) and (uri.headers or "method" in uri.params):
        return replace(uri, headers=(), params=uri.params.without("method"))
    return uri


def _over_tls(request: Request) -> bool:
    """Whether the hop the top Via describes used TLS (ours when we sent it, the last hop when received)."""
    via = request.top_via
    return via is not None and via.transport in ("TLS", "WSS")


def _secure(request: Request, tls: bool | None) -> bool:
    """§12.1.1 / §12.1.2: a SIPS Request-URI carried over TLS."""
    return isinstance(request.uri, SipUri) and request.uri.secure and (_over_tls(request) if tls is None else tls)


_order = itertools.count()  # the order in which dialogs were confirmed, for picking among forks


# --- the dialog -----------------------------------------------------------------------------------


@dataclass(eq=False)
class Dialog:
    """One dialog's state (§12). Build with `uac`, `uas` or `from_notify`; see the module docstring."""

    call_id: str
    local: NameAddr  # the From we write: local URI and local tag
    remote: NameAddr  # the To we write: remote URI and remote tag
    remote_target: Uri  # where requests go (§12.1): the peer's Contact
    route_set: tuple[NameAddr, ...] = ()
    local_seq: int | None = None  # None: not chosen yet (a UAS dialog before its first request)
    remote_seq: int | None = None  # None: the peer has sent nothing in the dialog yet
    local_contact: NameAddr | None = None  # the Contact we put in target refresh requests
    secure: bool = False
    role: Role = Role.UAC
    method: str = "INVITE"  # the request that created the dialog
    state: DialogState = DialogState.CONFIRMED
    user_data: Any = None  # for the TU: the leg or subscription this dialog serves
    first_seq: int | None = field(default=None, repr=False)  # the CSeq to start from when local_seq is None
    confirmed_order: int | None = field(default=None, repr=False)
    _outgoing_invite: int | None = field(default=None, repr=False)  # CSeq of our pending INVITE
    _incoming_invite: int | None = field(default=None, repr=False)  # CSeq of their unanswered INVITE
    _bye_sent: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.state is DialogState.CONFIRMED:
            self.confirmed_order = next(_order)

    # --- creation -----------------------------------------------------------------------------

    @classmethod
    def uac(cls, request: Request, response: Response, *, tls: bool | None = None) -> Dialog:
        """§12.1.2: the dialog a 101-199 with a To tag (early) or a 2xx (confirmed) sets up for us.

        The route set is the response's Record-Route in reverse order; the remote target its Contact
        (a peer that leaves Contact out keeps the Request-URI as target). `tls` says whether the
        request left over TLS; by default the request's top Via says.
        """
        status = response.status
        if request.method not in DIALOG_CREATING or request.to.tag is not None:
            raise DialogError(f"{request.method} with a To tag does not create a dialog")
        if not 101 <= status < 300:
            raise DialogError(f"a {status} response does not create a dialog (§12.1)")
        remote = response.to
        if status < 200 and remote.tag is None:
            raise DialogError("a provisional response without a To tag does not create a dialog (§12.1)")
        contacts = response.contact
        dialog = cls(
            call_id=request.call_id,
            local=request.from_,
            remote=remote,
            remote_target=contacts[0].uri if contacts else request.uri,
            route_set=tuple(reversed(response.record_route)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            local_contact=request.contact[0] if request.contact else None,
            secure=_secure(request, tls),
            role=Role.UAC,
            method=request.method,
            state=DialogState.CONFIRMED if status >= 200 else DialogState.EARLY,
        )
        if status < 200 and request.method == "INVITE":
            dialog._outgoing_invite = request.cseq.seq
        return dialog

    @classmethod
    def uas(
        cls, request: Request, response: Response, *, tls: bool | None = None, first_seq: int | None = None
    ) -> Dialog:
        """§12.1.1: the dialog we set up by answering `request` with `response` (101-299, To tag, Contact).

        The route set is the request's Record-Route in order; the remote target its Contact.
        `first_seq` fixes the CSeq of our first request in the dialog (else a random one is chosen then).
        """
        status = response.status
        if request.method not in DIALOG_CREATING or request.to.tag is not None:
            raise DialogError(f"{request.method} with a To tag does not create a dialog")
        if not 101 <= status < 300 or response.to.tag is None:
            raise DialogError("only a 101-299 response with a To tag creates a dialog (§12.1)")
        if not request.contact:
            raise DialogError(f"a dialog-creating {request.method} must carry a Contact (§12.1.1)")
        if not response.contact:
            raise DialogError("the response that creates a dialog must carry our Contact (§12.1.1)")
        dialog = cls(
            call_id=request.call_id,
            local=response.to,
            remote=request.from_,
            remote_target=request.contact[0].uri,
            route_set=tuple(request.record_route),
            remote_seq=request.cseq.seq,
            local_contact=response.contact[0],
            secure=_secure(request, tls),
            role=Role.UAS,
            method=request.method,
            state=DialogState.CONFIRMED if status >= 200 else DialogState.EARLY,
        )
        dialog.first_seq = first_seq
        if status < 200 and request.method == "INVITE":
            dialog._incoming_invite = request.cseq.seq
        return dialog

    @classmethod
    def from_notify(cls, subscribe: Request, notify: Request, *, tls: bool | None = None) -> Dialog:
        """RFC 6665 §4.1.2.4: a NOTIFY that arrives before (or instead of) the 2xx creates the dialog.

        `subscribe` is the SUBSCRIBE (or REFER) we sent; the NOTIFY plays the part of the response
        for the tags and the part of a received request for route set and target (§12.1.1).
        """
        if notify.method != "NOTIFY" or notify.to.tag != subscribe.from_.tag or notify.call_id != subscribe.call_id:
            raise DialogError("this NOTIFY does not belong to that subscription")
        if not notify.contact:
            raise DialogError("a NOTIFY must carry a Contact (RFC 6665 §4.2.2)")
        if notify.from_.tag is None:
            raise DialogError("a NOTIFY must carry a From tag (RFC 6665 §4.2.2)")
        return cls(
            call_id=subscribe.call_id,
            local=subscribe.from_,
            remote=notify.from_,
            remote_target=notify.contact[0].uri,
            route_set=tuple(notify.record_route),
            local_seq=subscribe.cseq.seq,
            remote_seq=notify.cseq.seq,
            local_contact=subscribe.contact[0] if subscribe.contact else None,
            secure=_secure(subscribe, tls),
            role=Role.UAC,
            method=subscribe.method,
        )

    # --- identity and state -------------------------------------------------------------------

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    @property
    def invite_pending(self) -> bool:
        """An INVITE transaction is in progress in either direction (§14.1)."""
        return self._outgoing_invite is not None or self._incoming_invite is not None

    def _move(self, new: DialogState) -> None:
        if (self.state, new) not in TRANSITIONS:
            raise IllegalTransition(f"dialog {self.id}: {self.state.name} -> {new.name}")
        self.state = new
        if new is DialogState.CONFIRMED:
            self.confirmed_order = next(_order)

    def terminate(self) -> None:
        """End the dialog (idempotent): for the TU, e.g. when its last usage ends (RFC 5057)."""
        if self.state is not DialogState.TERMINATED:
            self._move(DialogState.TERMINATED)

    # --- sending (§12.2.1) ----------------------------------------------------------------------

    def _next_seq(self) -> int:
        """§12.2.1.1: the local sequence number, incremented by one for each new request."""
        if self.local_seq is None:  # §8.1.1.5: any value below 2**31
            self.local_seq = self.first_seq if self.first_seq is not None else 1 + secrets.randbelow(2**16)
        else:
            if self.local_seq >= MAX_CSEQ:
                raise DialogError("the local CSeq would pass 2**31 - 1 (§8.1.1.5)")
            self.local_seq += 1
        return self.local_seq

    def _destination(self) -> tuple[Uri, list[str]]:
        """§12.2.1.1: the Request-URI and Route values, by loose (lr) or strict routing."""
        if not self.route_set:
            return _request_uri(self.remote_target), []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and first.uri.lr:
            return _request_uri(self.remote_target), [str(route) for route in self.route_set]
        # A strict router (RFC 2543): it goes in the Request-URI, stripped of what a Request-URI may
        # not carry, and the remote target becomes the last Route value.
        routes = [str(route) for route in self.route_set[1:]]
        routes.append(str(NameAddr(self.remote_target)))
        return _request_uri(first.uri), routes

    def _build(
        self,
        method: str,
        via: str,
        seq: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
        contact: bool,
    ) -> Request:
        if body and not content_type:
            raise DialogError("a body needs a Content-Type (§7.4.1)")
        uri, routes = self._destination()
        out: list[tuple[str, str]] = [("Via", via)]
        if routes:
            out.append(("Route", ", ".join(routes)))
        out += [
            ("Max-Forwards", MAX_FORWARDS),
            ("From", str(self.local)),
            ("To", str(self.remote)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        if contact and self.local_contact is not None:
            out.append(("Contact", str(self.local_contact)))
        out.extend(headers)
        if content_type and body:
            out.append(("Content-Type", content_type))
        out.append(("Content-Length", str(len(body))))
        return Request(method, uri, out, body)

    def request(
        self,
        method: str,
        via: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request within the dialog (§12.2.1.1). Not for ACK (`ack`) nor CANCEL (`build_cancel`).

        Sending BYE ends the dialog at once (§15.1.1); a BYE may be built again afterwards, for
        instance to answer a digest challenge. A re-INVITE needs a confirmed dialog and no INVITE
        in progress either way (§14.1).
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise DialogError(f"build {method} with {'ack()' if method == 'ACK' else 'build_cancel()'}")
        if self.state is DialogState.TERMINATED and not (method == "BYE" and self._bye_sent):
            raise DialogError(f"the dialog is terminated; no {method} can be sent in it")
        if method == "BYE" and self.state is DialogState.EARLY and self.role is Role.UAS:
            raise DialogError("the callee must not send BYE on an early dialog (§15)")
        if method == "INVITE":
            if self.state is not DialogState.CONFIRMED:
                raise DialogError("a re-INVITE needs a confirmed dialog (§14.1)")
            if self.invite_pending:
                raise DialogError("an INVITE transaction is already in progress in this dialog (§14.1)")
        seq = self._next_seq()
        req = self._build(method, via, seq, headers, body, content_type, contact=method in _WITH_CONTACT)
        if method == "INVITE":
            self._outgoing_invite = seq
        elif method == "BYE":
            self._bye_sent = True
            self.terminate()
        return req

    def bye(self, via: str, *, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """§15.1.1: ends the dialog as soon as it is built. Put a Reason (RFC 3326) in `headers` if wanted."""
        return self.request("BYE", via, headers=headers)

    def reinvite(
        self,
        via: str,
        body: bytes = b"",
        content_type: str | None = "application/sdp",
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """§14.1: a re-INVITE (a target refresh), usually with a new offer."""
        return self.request("INVITE", via, headers=headers, body=body, content_type=content_type)

    def update(
        self,
        via: str,
        body: bytes = b"",
        content_type: str | None = "application/sdp",
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """RFC 3311 §5.1: UPDATE, allowed in early and confirmed dialogs, a target refresh."""
        return self.request("UPDATE", via, headers=headers, body=body, content_type=content_type)

    def info(
        self,
        via: str,
        body: bytes = b"",
        content_type: str | None = None,
        *,
        package: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """RFC 6086 §4.2: INFO, with the Info-Package header when an info package is used."""
        extra = [("Info-Package", package)] if package else []
        return self.request("INFO", via, headers=[*extra, *headers], body=body, content_type=content_type)

    def refer(
        self,
        via: str,
        refer_to: Uri | NameAddr | str,
        *,
        replaces: DialogId | None = None,
        referred_by: str | None = None,
        subscription: bool = True,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """RFC 3515 §2.4.1: REFER with exactly one Refer-To.

        `replaces` (RFC 3891, attended transfer) is the id of the dialog to be replaced *as this
        side sees it*; it is embedded as a ``Replaces`` URI header in Refer-To, with the tags turned
        around as the recipient of the INVITE will match them (`replaces_value`). `referred_by` adds
        Referred-By (RFC 3892); `subscription=False` asks for no implicit subscription (RFC 4488).
        """
        target = refer_to if isinstance(refer_to, NameAddr) else NameAddr(_as_uri(refer_to))
        if replaces is not None:
            if not isinstance(target.uri, SipUri):
                raise DialogError("Replaces needs a SIP or SIPS Refer-To URI")
            uri_headers = tuple(h for h in target.uri.headers if h[0].lower() != "replaces")
            uri = replace(target.uri, headers=(*uri_headers, ("Replaces", replaces_value(replaces))))
            target = replace(target, uri=uri)
        extra = [("Refer-To", str(target))]
        if referred_by:
            extra.append(("Referred-By", referred_by))
        if not subscription:
            extra.append(("Refer-Sub", "false"))
        return self.request("REFER", via, headers=[*extra, *headers])

    def subscribe(
        self,
        via: str,
        event: str,
        expires: int,
        *,
        accept: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """RFC 6665 §4.1.2: a SUBSCRIBE in this dialog (a refresh, or an unsubscribe with 0)."""
        extra = [("Event", event), ("Expires", str(expires))]
        if accept:
            extra.append(("Accept", accept))
        return self.request("SUBSCRIBE", via, headers=[*extra, *headers], body=body, content_type=content_type)

    def notify(
        self,
        via: str,
        event: str,
        subscription_state: str,
        body: bytes = b"",
        content_type: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """RFC 6665 §4.2.2: a NOTIFY with Event and Subscription-State."""
        extra = [("Event", event), ("Subscription-State", subscription_state)]
        return self.request("NOTIFY", via, headers=[*extra, *headers], body=body, content_type=content_type)

    def message(
        self, via: str, body: bytes, content_type: str = "text/plain", *, headers: Iterable[tuple[str, str]] = ()
    ) -> Request:
        """RFC 3428: MESSAGE within the dialog."""
        return self.request("MESSAGE", via, headers=headers, body=body, content_type=content_type)

    def ack(self, invite: Request, via: str, *, body: bytes = b"", content_type: str | None = None) -> Request:
        """§13.2.2.4: the ACK for a 2xx to `invite`, built as any in-dialog request but with the INVITE's
        CSeq number (method ACK) and its credentials; the local CSeq does not move.

        Allowed in any state: a 2xx retransmitted after we sent BYE must still be ACKed.
        """
        if invite.method != "INVITE":
            raise DialogError("only an INVITE is acknowledged")
        credentials = [(name, value) for name in _AUTH_HEADERS for value in invite.get_all(name)]
        return self._build("ACK", via, invite.cseq.seq, credentials, body, content_type, contact=False)

    # --- receiving (§12.2.2) --------------------------------------------------------------------

    def receive_request(self, request: Request) -> Verdict:
        """§12.2.2: a request within this dialog. Accept, or refuse with the status to answer.

        - lower CSeq than the last one: 500 (out of order); ACK and CANCEL carry the number of the
          INVITE they belong to and are exempt;
        - re-INVITE while ours is pending: 491; while theirs is unanswered: 500 + Retry-After (§14.2);
        - a target refresh request with a Contact replaces the remote target;
        - BYE ends the dialog (§15.1.2); the TU answers it 200.
        """
        method = request.method
        if self.state is DialogState.TERMINATED:
            return DROP if method == "ACK" else _NO_DIALOG
        if method in ("ACK", "CANCEL"):
            return ACCEPT
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return Verdict(False, 500, "Server Internal Error")
        self.remote_seq = seq
        if method == "INVITE":
            if self._outgoing_invite is not None:  # §14.2: glare
                return Verdict(False, 491, "Request Pending")
            if self._incoming_invite is not None and self._incoming_invite != seq:  # §14.2
                return Verdict(False, 500, "Server Internal Error", (("Retry-After", str(secrets.randbelow(11))),))
            self._incoming_invite = seq
        if method in TARGET_REFRESH:
            contacts = request.contact
            if contacts:  # §12.2.2, RFC 3311 §5.2, RFC 6665
                self.remote_target = contacts[0].uri
        if method == "BYE":
            self.terminate()
        return ACCEPT

    def responded(self, request: Request, response: Response) -> None:
        """A UAS dialog is told what the TU answered to `request` (a request in, or creating, this dialog).

        The 2xx to the creating INVITE confirms an early dialog, a non-2xx final ends it (§12.3);
        any final response to a re-INVITE ends its transaction for the §14 bookkeeping.
        """
        status = response.status
        if status < 200 or request.method != "INVITE":
            return
        if self._incoming_invite == request.cseq.seq:
            self._incoming_invite = None
        if request.to.tag is None and self.state is DialogState.EARLY:
            if status < 300:
                self._move(DialogState.CONFIRMED)
                if response.contact:
                    self.local_contact = response.contact[0]
            else:
                self._move(DialogState.TERMINATED)

    def receive_response(self, request: Request, response: Response) -> None:
        """A response to `request`, which we sent in (or to create) this dialog (§12.2.1.2, §13.2.2.4)."""
        if self.state is DialogState.TERMINATED:
            return
        status = response.status
        if status < 200:
            return
        if request.method == "INVITE" and self._outgoing_invite == request.cseq.seq:
            self._outgoing_invite = None
        if status in (481, 408):  # §12.2.1.2: the peer no longer knows the dialog, or never answered
            self._move(DialogState.TERMINATED)
            return
        if self.state is DialogState.EARLY and request.to.tag is None:
            if status >= 300:  # §12.3: a non-2xx final response ends the early dialogs
                self._move(DialogState.TERMINATED)
                return
            # §13.2.2.4: the early dialog is confirmed and its route set recomputed from the 2xx
            self._move(DialogState.CONFIRMED)
            self.route_set = tuple(reversed(response.record_route))
        if 200 <= status < 300 and request.method in TARGET_REFRESH:
            contacts = response.contact
            if contacts:  # §12.2.1.2: a 2xx to a target refresh replaces the remote target
                self.remote_target = contacts[0].uri

    def request_timed_out(self, request: Request) -> None:
        """§12.2.1.2: no response at all to a request in the dialog ends it, as a 408 would."""
        if self.state is not DialogState.TERMINATED:
            if request.method == "INVITE" and self._outgoing_invite == request.cseq.seq:
                self._outgoing_invite = None
            self._move(DialogState.TERMINATED)


def _as_uri(value: Uri | str) -> Uri:
    return parse_uri(value) if isinstance(value, str) else value


# --- CANCEL (§9.1) ----------------------------------------------------------------------------------


def build_cancel(invite: Request) -> Request:
    """§9.1: the CANCEL for a pending INVITE, built from the INVITE as sent (not from a dialog).

    Request-URI, Call-ID, To, From and the CSeq number are the INVITE's, tags included; the one Via
    is the INVITE's top Via (so it matches the same server transaction); its Route values come
    along. Send it only once a provisional response has arrived (§9.1).
    """
    if invite.method != "INVITE":
        raise DialogError("only an INVITE is cancelled with CANCEL by a UA")
    top = invite.top_via
    if top is None:
        raise DialogError("the INVITE has no Via to copy")
    headers: list[tuple[str, str]] = [("Via", str(top))]
    headers.extend(("Route", value) for value in invite.get_all("route"))
    headers += [
        ("Max-Forwards", MAX_FORWARDS),
        ("From", invite.get("from") or ""),
        ("To", invite.get("to") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} CANCEL"),
        ("Content-Length", "0"),
    ]
    return Request("CANCEL", invite.uri, headers)


# --- Replaces (RFC 3891) ----------------------------------------------------------------------------


def replaces_value(dialog_id: DialogId) -> str:
    """The Replaces header value naming `dialog_id` (our view) for the peer of that dialog.

    RFC 3891 §3: the recipient compares to-tag with its local tag and from-tag with its remote
    tag, so our remote tag is the to-tag and our local tag the from-tag.
    """
    return f"{dialog_id.call_id};to-tag={dialog_id.remote_tag};from-tag={dialog_id.local_tag}"


def parse_replaces(value: str) -> DialogId:
    """RFC 3891 §6.1: a Replaces value as the id of one of *our* dialogs (to-tag local, from-tag remote)."""
    call_id, semi, rest = value.strip().partition(";")
    params = parse_params(semi + rest, "Replaces") if semi else NO_PARAMS
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not call_id or to_tag is None or from_tag is None:
        raise DialogError(f"not a Replaces value: {value!r}")
    return DialogId(call_id.strip(), unquote(to_tag), unquote(from_tag))


# --- the registry -----------------------------------------------------------------------------------


class DialogSet:
    """Every dialog of one UA by `DialogId`, and the §12 / §13 rules that create and find them."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Dialog):
            return self._dialogs.get(item.id) is item
        return item in self._dialogs

    def add(self, dialog: Dialog) -> Dialog:
        if dialog.id in self._dialogs:
            raise DialogError(f"dialog {dialog.id} already exists")
        self._dialogs[dialog.id] = dialog
        return dialog

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def discard(self, dialog: Dialog | DialogId) -> None:
        key = dialog.id if isinstance(dialog, Dialog) else dialog
        self._dialogs.pop(key, None)

    def prune(self) -> list[Dialog]:
        """Forget the terminated dialogs; those removed.

        Not before an INVITE's transaction is over (64*T1 after its first 2xx, §13.2.2.4): until then a
        retransmitted 2xx of a fork already released must find its dialog, or it would make a new one.
        """
        gone = [d for d in self._dialogs.values() if d.terminated]
        for dialog in gone:
            del self._dialogs[dialog.id]
        return gone

    def created_by(self, request: Request) -> list[Dialog]:
        """The dialogs a request we sent created (one per To tag when it forked), oldest first."""
        call_id, tag = request.call_id, request.from_.tag or ""
        return [d for d in self._dialogs.values() if d.role is Role.UAC and d.call_id == call_id and d.local_tag == tag]

    # --- UAS side -----------------------------------------------------------------------------

    def receive_request(self, request: Request) -> tuple[Dialog | None, Verdict]:
        """§12.2.2: the dialog a received request belongs to and its verdict.

        A request without a To tag is outside any dialog: ``(None, ACCEPT)``. A To tag that names no
        live dialog gets 481 (an ACK is dropped instead).
        """
        if request.to.tag is None:
            return None, ACCEPT
        dialog = self._dialogs.get(DialogId.of_request(request))
        if dialog is None or dialog.terminated:
            return None, DROP if request.method == "ACK" else _NO_DIALOG
        return dialog, dialog.receive_request(request)

    def respond(
        self, request: Request, response: Response, *, tls: bool | None = None, first_seq: int | None = None
    ) -> Dialog | None:
        """The TU answers `request` with `response`: create the UAS dialog it sets up (§12.1.1), or
        tell the dialog the request was in (`Dialog.responded`). The dialog concerned, if any.

        `tls` and `first_seq` are passed to `Dialog.uas` when a dialog is created."""
        if request.to.tag is not None:
            dialog = self._dialogs.get(DialogId.of_request(request))
            if dialog is not None:
                dialog.responded(request, response)
            return dialog
        status, to_tag = response.status, response.to.tag
        if to_tag is None or request.method not in DIALOG_CREATING:
            return None
        dialog = self._dialogs.get(DialogId(request.call_id, to_tag, request.from_.tag or ""))
        if dialog is not None:
            dialog.responded(request, response)
            return dialog
        if 101 <= status < 300 and (status >= 200 or request.method == "INVITE"):
            return self.add(Dialog.uas(request, response, tls=tls, first_seq=first_seq))
        return None

    # --- UAC side -----------------------------------------------------------------------------

    def receive_response(self, request: Request, response: Response, *, tls: bool | None = None) -> Dialog | None:
        """A response to `request`, which we sent: find its dialog or create one (§12.1.2, §13.2.2.4).

        Each 1xx-with-tag or 2xx from a new To tag to a dialog-creating request makes a dialog, so a
        forked INVITE ends up with several (see `surplus_dialogs`). A non-2xx final response ends
        every early dialog the request created (§12.3). Returns the dialog concerned, if any.
        """
        status = response.status
        dialog = self._dialogs.get(DialogId.of_response(response))
        creating = request.to.tag is None and request.method in DIALOG_CREATING
        if dialog is not None:
            dialog.receive_response(request, response)
        elif creating and 101 <= status < 300 and response.to.tag is not None:
            if status >= 200 or request.method == "INVITE":  # only INVITE has early dialogs
                dialog = self.add(Dialog.uac(request, response, tls=tls))
        elif creating and 200 <= status < 300:  # an RFC 2543 UAS that sends no To tag (§12.1.2)
            dialog = self.add(Dialog.uac(request, response, tls=tls))
        if creating and status >= 300:
            for early in self.created_by(request):
                if early.state is DialogState.EARLY:
                    early.terminate()
        return dialog

    def invite_completed(self, invite: Request) -> list[Dialog]:
        """§13.2.2.4: 64*T1 after the first 2xx the INVITE is complete; early dialogs left are ended."""
        ended = [d for d in self.created_by(invite) if d.state is DialogState.EARLY]
        for dialog in ended:
            dialog.terminate()
        return ended


# --- forking (§13.2.2.4, §13.3.1.4) -------------------------------------------------------------


def surplus_dialogs(invite: Request, dialogs: Iterable[Dialog], keep: Dialog | None = None) -> list[Dialog]:
    """The confirmed dialogs `invite` created beyond the one the UAC keeps, to be ACKed and then BYEd.

    §13.2.2.4: every 2xx is ACKed, each creating its own dialog; a UAC that wants one session ends
    the others with BYE. `keep` defaults to the dialog confirmed first.
    """
    call_id, tag = invite.call_id, invite.from_.tag or ""
    mine = [
        d
        for d in dialogs
        if d.role is Role.UAC
        and d.method == "INVITE"
        and d.call_id == call_id
        and d.local_tag == tag
        and d.state is DialogState.CONFIRMED
    ]
    if not mine:
        return []
    kept = keep if keep is not None else min(mine, key=lambda d: d.confirmed_order or 0)
    return [d for d in mine if d is not kept]


@dataclass(frozen=True)
class ForkRelease:
    """A surplus forked dialog and the two requests that end it: the ACK for its 2xx, then the BYE."""

    dialog: Dialog
    ack: Request
    bye: Request


def release_surplus(
    invite: Request, dialogs: Iterable[Dialog], via: Callable[[Dialog], str], keep: Dialog | None = None
) -> list[ForkRelease]:
    """`surplus_dialogs`, with the ACK and the BYE for each built (`via` gives a fresh Via per request).

    Send the ACK first and the BYE after it: §13.2.2.4 acknowledges every 2xx, then ends the dialogs
    not wanted with BYE (§15).
    """
    out: list[ForkRelease] = []
    for dialog in surplus_dialogs(invite, dialogs, keep):
        ack = dialog.ack(invite, via(dialog))
        out.append(ForkRelease(dialog, ack, dialog.bye(via(dialog))))
    return out
