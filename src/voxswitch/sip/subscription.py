"""SIP-specific event notification (RFC 6665), sans-I/O: notifier, subscriber, and two bodies.

Theory of operation
-------------------
A subscription is a usage of a dialog (RFC 6665 §4.4.1, RFC 5057): a SUBSCRIBE creates it, or a
REFER implicitly (RFC 3515 §2.4.4); its dialog, Event package and Event ``id`` name it (§4.1.2.1,
§7.2.1); refreshing SUBSCRIBEs keep it alive; it ends by expiry, by a NOTIFY that says
``terminated``, or by a 481. Its state is one Enum moved through `TRANSITIONS` (anything else raises
`IllegalTransition`)::

    INIT ──▶ PENDING ⇄ ACTIVE
      └─────────┴────────┴──▶ TERMINATED

`INIT` is the subscriber's alone: the SUBSCRIBE is out and no NOTIFY has said anything yet.

Notifier (`Notifier`, §4.2). `receive_subscribe` and `receive_refer` vet a request against the
registered `EventPackage`s (an unknown one gets 489 with Allow-Events, §4.2.1.1, §7.2.2), grant an
expiry within the package's bounds (423 with Min-Expires below them, shortened above, §4.2.1.1),
create or refresh the subscription and its dialog, and return the response to send. The TU then
sends the resource's state at once with `notify()` (§4.2.1.2) — the notifier knows subscriptions,
not mailboxes. Expires 0 unsubscribes and the final NOTIFY (``terminated;reason=timeout``) comes back
ready to send. `expire(now)` ends the subscriptions nobody refreshed and returns their final NOTIFYs
(§4.2.2); `next_deadline()` says when to call it. Responses to NOTIFYs come back through
`receive_notify_response`: 481, a timeout, or a failure without Retry-After ends the subscription.

Subscriber (`ClientSubscription`, §4.1). Builds the SUBSCRIBE, takes the granted Expires from the
2xx, handles NOTIFYs (Subscription-State, §4.1.3) — the first of which may create the dialog before
the 2xx does (§4.1.2.4) — and says when to refresh (`refresh_at`) and, once terminated, whether and
when to subscribe again (`retry_at`).

Bodies: `message_summary` / `parse_message_summary` (RFC 3842 §5.2, message waiting) and
`sipfrag` / `parse_sipfrag` (RFC 3420, the REFER progress reports of RFC 3515 §2.4.5).

Out of scope: keeping more than one subscription from a forked SUBSCRIBE (NOTIFYs from further
dialogs are refused with 481, §4.1.4), resource lists (RFC 4662) and NOTIFY rate limits (a package's
business, §5.4.11). Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import heapq
import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from voxswitch.sip.dialog import (
    ACCEPT,
    MAX_FORWARDS,
    Dialog,
    DialogError,
    DialogId,
    DialogSet,
    IllegalTransition,
    Verdict,
    new_tag,
)
from voxswitch.sip.errors import SipParseError
from voxswitch.sip.headers import NameAddr, Params, parse_media_type, parse_name_addr, parse_params, unquote
from voxswitch.sip.message import REASON_PHRASES, SIP_VERSION, Request, Response, build_response
from voxswitch.sip.uri import NO_PARAMS, Uri, bounded_int, parse_uri

__all__ = [
    "DEFAULT_PACKAGES",
    "MESSAGE_CLASSES",
    "MESSAGE_SUMMARY",
    "MESSAGE_SUMMARY_TYPE",
    "PRESENCE",
    "REFER",
    "SIPFRAG_TYPE",
    "TRANSITIONS",
    "ClientSubscription",
    "Event",
    "EventPackage",
    "IllegalTransition",
    "MessageCounts",
    "MessageSummary",
    "Notifier",
    "SubState",
    "SubscribeResult",
    "Subscription",
    "SubscriptionError",
    "SubscriptionStatus",
    "message_summary",
    "parse_event",
    "parse_message_summary",
    "parse_sipfrag",
    "parse_subscription_state",
    "sipfrag",
]

MESSAGE_SUMMARY_TYPE = "application/simple-message-summary"  # RFC 3842 §3.5
SIPFRAG_TYPE = "message/sipfrag;version=2.0"  # RFC 3420 §4, RFC 3515 §2.4.5
MAX_DELTA = 2**32 - 1  # delta-seconds (RFC 3261 §25.1)


class SubscriptionError(Exception):
    """The TU asked for something a subscription cannot do (a bug in the caller, not a peer's doing)."""


# --- the machine ------------------------------------------------------------------------------------


class SubState(Enum):
    INIT = "init"  # subscriber only: SUBSCRIBE sent, no NOTIFY yet
    PENDING = "pending"  # §4.1.3: received, not yet authorised
    ACTIVE = "active"
    TERMINATED = "terminated"


_I, _P, _A, _T = SubState.INIT, SubState.PENDING, SubState.ACTIVE, SubState.TERMINATED
TRANSITIONS: frozenset[tuple[SubState, SubState]] = frozenset(
    {
        (_I, _P),
        (_I, _A),
        (_I, _T),  # refused, or a fetch (§4.4.3) answered with one terminated NOTIFY
        (_P, _A),  # authorised (§4.2.1.3)
        (_P, _T),
        (_A, _P),  # §4.1.3 does not forbid a notifier to suspend authorisation
        (_A, _T),
    }
)


def _check(old: SubState, new: SubState, what: str) -> None:
    if (old, new) not in TRANSITIONS:
        raise IllegalTransition(f"{what}: {old.name} -> {new.name}")


# --- Event and Subscription-State (§7.2.1, §7.2.3) ----------------------------------------------------

# event-type = event-package *( "." event-template ); both token-nodot
_EVENT_TYPE = re.compile(r"[A-Za-z0-9\-!%*_+`'~]+(?:\.[A-Za-z0-9\-!%*_+`'~]+)*")
_SUBSTATE = re.compile(r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)")


@dataclass(frozen=True, slots=True)
class Event:
    """An Event header value (§7.2.1): the package (with templates) and the ``id`` parameter."""

    package: str
    id: str | None = None
    params: Params = NO_PARAMS  # the other parameters, as received

    def matches(self, other: Event) -> bool:
        """§7.2.1: two Event values name the same subscription when the type and the id agree."""
        return self.package == other.package and self.id == other.id

    def __str__(self) -> str:
        ident = "" if self.id is None else f";id={self.id}"
        return f"{self.package}{ident}{self.params}"


def parse_event(value: str) -> Event:
    text = value.strip(" \t")
    m = _EVENT_TYPE.match(text)
    if m is None:
        raise SipParseError(400, "Bad Request - Malformed Event", detail=value[:120])
    params = parse_params(text[m.end() :], "Event")
    ident = params.get("id")
    return Event(m.group(), None if ident is None else unquote(ident), params.without("id"))


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    """A Subscription-State value (§7.2.3): the state, and its expires, reason, retry-after parameters."""

    state: str  # "active", "pending", "terminated", or an extension value; lowercase
    expires: int | None = None
    reason: str | None = None
    retry_after: int | None = None

    def __str__(self) -> str:
        parts = [self.state]
        if self.reason is not None:
            parts.append(f"reason={self.reason}")
        if self.expires is not None:
            parts.append(f"expires={self.expires}")
        if self.retry_after is not None:
            parts.append(f"retry-after={self.retry_after}")
        return ";".join(parts)


def parse_subscription_state(value: str) -> SubscriptionStatus:
    m = _SUBSTATE.match(value)
    if m is None:
        raise SipParseError(400, "Bad Request - Malformed Subscription-State", detail=value[:120])
    params = parse_params(value[m.end() :], "Subscription-State")

    def seconds(name: str) -> int | None:
        raw = params.get(name)
        if raw is None:
            return None
        number = bounded_int(raw, MAX_DELTA)
        if number is None:
            raise SipParseError(400, "Bad Request - Malformed Subscription-State", detail=value[:120])
        return number

    reason = params.get("reason")
    return SubscriptionStatus(
        m.group(1).lower(), seconds("expires"), None if not reason else reason.lower(), seconds("retry-after")
    )


# --- event packages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventPackage:
    """What the notifier knows of an event package (§5): its name, NOTIFY body type and expiry bounds."""

    name: str
    content_type: str | None = None  # the body type of its NOTIFYs, checked against Accept
    default_expires: int = 3600  # when the SUBSCRIBE says nothing (§4.2.1.1; the package defines it)
    min_expires: int = 60  # shorter non-zero requests get 423 (§4.2.1.1)
    max_expires: int = 86400  # longer ones are shortened


MESSAGE_SUMMARY = EventPackage("message-summary", MESSAGE_SUMMARY_TYPE, default_expires=3600)  # RFC 3842 §3.4
PRESENCE = EventPackage("presence", "application/pidf+xml", default_expires=3600)  # RFC 3856 §6.4
REFER = EventPackage("refer", SIPFRAG_TYPE, default_expires=300)  # RFC 3515 §2.4.4: the notifier chooses
DEFAULT_PACKAGES: tuple[EventPackage, ...] = (MESSAGE_SUMMARY, REFER, PRESENCE)


def _acceptable(request: Request, content_type: str | None) -> bool:
    """§4.2.1.1: can a body of `content_type` go to a subscriber that sent this Accept?"""
    accepted = request.get_list("Accept")
    if not accepted or content_type is None:
        return True
    essence = parse_media_type(content_type).essence
    wildcards = {essence, "*/*", essence.split("/")[0] + "/*"}
    for value in accepted:
        try:
            if parse_media_type(value).essence in wildcards:
                return True
        except SipParseError:
            continue
    return False


# --- notifier ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    """A subscription the notifier holds (§4.2)."""

    dialog: Dialog
    package: EventPackage
    event: Event
    state: SubState
    expires_at: float
    owns_dialog: bool  # the dialog exists for this subscription and ends with it (§4.4.1)
    resource: Uri  # the Request-URI of the SUBSCRIBE or REFER: what is subscribed to
    subscriber: NameAddr  # its From
    refer_to: NameAddr | None = None  # for the refer package (RFC 3515)
    reason: str | None = None  # once terminated
    body: bytes = b""  # the last state sent, repeated in the final NOTIFY
    content_type: str | None = None
    user_data: Any = None

    @property
    def key(self) -> tuple[DialogId, str, str | None]:
        return (self.dialog.id, self.event.package, self.event.id)

    @property
    def terminated(self) -> bool:
        return self.state is SubState.TERMINATED

    def remaining(self, now: float) -> int:
        """Seconds left, rounded down (what the ``expires`` parameter says, §4.2.2)."""
        return max(0, int(self.expires_at - now))

    def _move(self, new: SubState) -> None:
        if new is not self.state:
            _check(self.state, new, f"subscription {self.event}")
            self.state = new


@dataclass
class SubscribeResult:
    """What the notifier made of a SUBSCRIBE or REFER.

    Send `response`. Then, when `notify_now`, send the resource's current state with
    `Notifier.notify` at once (§4.2.1.2); send every request in `notifies` (an unsubscribe's final
    NOTIFY).
    """

    response: Response
    subscription: Subscription | None = None
    notify_now: bool = False
    notifies: list[Request] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return 200 <= self.response.status < 300


class Notifier:
    """The notifier side of RFC 6665 for every package it serves; see the module docstring.

    `contact` is our Contact (``<sip:...>``) for the responses and NOTIFYs; `via(dialog)` gives a fresh
    Via value (with a new branch) for a request in that dialog; `dialogs` is shared with the rest of
    the UA so in-dialog SUBSCRIBEs and REFERs find dialogs an INVITE made.
    """

    def __init__(
        self,
        contact: str,
        via: Callable[[Dialog], str],
        *,
        packages: Iterable[EventPackage] = DEFAULT_PACKAGES,
        dialogs: DialogSet | None = None,
    ) -> None:
        self.contact = contact
        self._via = via
        self.packages: dict[str, EventPackage] = {p.name: p for p in packages}
        self.dialogs = dialogs if dialogs is not None else DialogSet()
        self.subscriptions: dict[tuple[DialogId, str, str | None], Subscription] = {}
        self._heap: list[tuple[float, int, Subscription]] = []
        self._seq = itertools.count()

    @property
    def allow_events(self) -> str:
        """The Allow-Events value (§7.2.2): every package served."""
        return ", ".join(self.packages)

    # --- requests in ---------------------------------------------------------------------------

    def receive_subscribe(
        self, request: Request, now: float, *, pending: bool = False, to_tag: str | None = None
    ) -> SubscribeResult:
        """§4.2.1: a SUBSCRIBE, new (no To tag), refreshing, or unsubscribing (Expires 0).

        `pending` starts a new subscription unauthorised (§4.2.1.3); `activate` it later. A new
        subscription with Expires 0 is a fetch (§4.4.3): its one NOTIFY says terminated.
        """
        if request.method != "SUBSCRIBE":
            raise SubscriptionError(f"not a SUBSCRIBE: {request.method}")
        raw = request.get("Event")
        if raw is None:
            return self._refuse(request, 400, "Bad Request - Missing Event")
        try:
            event = parse_event(raw)
        except SipParseError as exc:
            return self._refuse(request, 400, exc.reason)
        package = self.packages.get(event.package)
        if package is None:  # §4.2.1.1 / §7.3.2
            return self._refuse(request, 489, "Bad Event", [("Allow-Events", self.allow_events)])
        if not _acceptable(request, package.content_type):
            return self._refuse(request, 406, "Not Acceptable", [("Accept", package.content_type or "")])
        requested = request.expires
        expires = package.default_expires if requested is None else requested
        if 0 < expires < package.min_expires:  # §4.2.1.1: too brief
            return self._refuse(request, 423, "Interval Too Brief", [("Min-Expires", str(package.min_expires))])
        expires = min(expires, package.max_expires)
        initial = SubState.PENDING if pending else SubState.ACTIVE
        return self._establish(request, now, event, package, expires, initial, to_tag, 200, None)

    def receive_refer(self, request: Request, now: float, *, to_tag: str | None = None) -> SubscribeResult:
        """RFC 3515 §2.4.2-§2.4.4: a REFER, in a dialog or outside one, answered 202 with an implicit
        ``refer`` subscription (id = the REFER's CSeq number, §2.4.6). The TU reports progress with
        `refer_progress`. ``Refer-Sub: false`` (RFC 4488) gets 202 and no subscription.
        """
        if request.method != "REFER":
            raise SubscriptionError(f"not a REFER: {request.method}")
        package = self.packages.get("refer")
        if package is None:
            raise SubscriptionError("the refer package is not registered with this notifier")
        values = request.get_all("Refer-To")
        if len(values) != 1:  # RFC 3515 §2.4.1: exactly one
            what = "Missing" if not values else "Multiple"
            return self._refuse(request, 400, f"Bad Request - {what} Refer-To")
        try:
            refer_to = parse_name_addr(values[0], "Refer-To")
        except SipParseError as exc:
            return self._refuse(request, 400, exc.reason)
        if (request.get("Refer-Sub") or "").strip().lower() == "false":
            if request.to.tag is not None:
                _, verdict = self.dialogs.receive_request(request)
                if not verdict.accepted:
                    return self._refused(request, verdict)
            headers = [("Refer-Sub", "false"), ("Contact", self.contact)]
            return SubscribeResult(build_response(request, 202, "Accepted", to_tag=to_tag, headers=headers))
        event = Event("refer", str(request.cseq.seq))
        return self._establish(
            request, now, event, package, package.default_expires, SubState.ACTIVE, to_tag, 202, refer_to
        )

    def _refuse(
        self, request: Request, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()
    ) -> SubscribeResult:
        return SubscribeResult(build_response(request, status, reason, headers=headers))

    def _refused(self, request: Request, verdict: Verdict) -> SubscribeResult:
        return self._refuse(request, verdict.status or 481, verdict.reason or "", verdict.headers)

    def _establish(
        self,
        request: Request,
        now: float,
        event: Event,
        package: EventPackage,
        expires: int,
        initial: SubState,
        to_tag: str | None,
        status: int,
        refer_to: NameAddr | None,
    ) -> SubscribeResult:
        headers = [("Contact", self.contact)]
        if request.method == "SUBSCRIBE":
            headers.insert(0, ("Expires", str(expires)))  # §4.2.1.1: a 2xx to SUBSCRIBE carries Expires
        if request.to.tag is not None:
            dialog, verdict = self.dialogs.receive_request(request)
            if dialog is None or not verdict.accepted:
                return self._refused(request, verdict)
            existing = self.subscriptions.get((dialog.id, event.package, event.id))
            response = build_response(request, status, headers=headers)
            if existing is not None and request.method == "SUBSCRIBE":
                if expires == 0:  # §4.1.2.3 / §4.2.1.4: unsubscribe, answered by a final NOTIFY
                    final = self._notify(existing, now, existing.body, existing.content_type, _T, "timeout", None)
                    return SubscribeResult(response, existing, notifies=[final])
                self._arm(existing, now + expires)  # §4.2.1.4: a refresh
                return SubscribeResult(response, existing, notify_now=True)
            if request.method == "SUBSCRIBE":
                # A SUBSCRIBE in a dialog must refresh a subscription of it: §4.5.2 lets a notifier
                # choose not to share dialogs, and this one doesn't. A REFER in an INVITE dialog does
                # add a usage (RFC 3515 §2.4.4).
                return self._refuse(request, 481, "Subscription Does Not Exist")
            owns = False
        else:
            if not request.contact:
                return self._refuse(request, 400, "Bad Request - Missing Contact")
            response = build_response(request, status, to_tag=to_tag or new_tag(), headers=headers)
            try:
                created = self.dialogs.respond(request, response)
            except DialogError as exc:
                return self._refuse(request, 400, f"Bad Request - {exc}")
            if created is None:
                return self._refuse(request, 500, "Server Internal Error")
            dialog, owns = created, True
        sub = Subscription(
            dialog=dialog,
            package=package,
            event=event,
            state=initial,
            expires_at=now + expires,
            owns_dialog=owns,
            resource=request.uri,
            subscriber=request.from_,
            refer_to=refer_to,
        )
        self.subscriptions[sub.key] = sub
        self._arm(sub, sub.expires_at)
        return SubscribeResult(response, sub, notify_now=True)

    # --- NOTIFYs out -----------------------------------------------------------------------------

    def notify(
        self,
        sub: Subscription,
        now: float,
        body: bytes = b"",
        content_type: str | None = None,
        *,
        state: SubState | None = None,
        reason: str | None = None,
        retry_after: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """§4.2.2: a NOTIFY carrying `body` (typed by the package unless `content_type` says otherwise).

        The Subscription-State is the subscription's (or `state`): ``active;expires=N``,
        ``pending;expires=N``, or ``terminated;reason=...`` — which the subscription becomes, and which
        it is anyway once its time is up (a fetch, §4.4.3).
        """
        if sub.terminated:
            raise SubscriptionError("the subscription is terminated; no NOTIFY can follow the final one")
        target = sub.state if state is None else state
        if target is SubState.INIT:
            raise SubscriptionError("a notifier's subscription is never in INIT")
        if target is not SubState.TERMINATED and sub.remaining(now) <= 0:
            target, reason = SubState.TERMINATED, "timeout"
        return self._notify(sub, now, body, content_type, target, reason, retry_after, headers)

    def activate(self, sub: Subscription, now: float, body: bytes = b"", content_type: str | None = None) -> Request:
        """§4.2.1.3: a pending subscription is authorised; the NOTIFY that says so."""
        return self.notify(sub, now, body, content_type, state=SubState.ACTIVE)

    def terminate(
        self,
        sub: Subscription,
        now: float,
        reason: str = "noresource",
        body: bytes = b"",
        content_type: str | None = None,
        *,
        retry_after: int | None = None,
    ) -> Request:
        """§4.2.2: the notifier ends a subscription; the final NOTIFY (reasons in §4.1.3)."""
        return self.notify(
            sub, now, body, content_type, state=SubState.TERMINATED, reason=reason, retry_after=retry_after
        )

    def refer_progress(self, sub: Subscription, now: float, status: int, reason: str | None = None) -> Request:
        """RFC 3515 §2.4.5, §2.4.7: a NOTIFY whose sipfrag body reports the referred request's `status`.

        A final status (200 and up) ends the subscription with ``terminated;reason=noresource``.
        """
        body = sipfrag(status, reason)
        if status >= 200:
            return self.terminate(sub, now, "noresource", body, SIPFRAG_TYPE)
        return self.notify(sub, now, body, SIPFRAG_TYPE)

    def _notify(
        self,
        sub: Subscription,
        now: float,
        body: bytes,
        content_type: str | None,
        target: SubState,
        reason: str | None,
        retry_after: int | None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        if target is SubState.TERMINATED:
            status = SubscriptionStatus("terminated", reason=reason, retry_after=retry_after)
        else:
            status = SubscriptionStatus(target.value, expires=sub.remaining(now))
        ctype = content_type or (sub.package.content_type if body else None)
        request = sub.dialog.notify(self._via(sub.dialog), str(sub.event), str(status), body, ctype, headers=headers)
        if body:
            sub.body, sub.content_type = body, ctype
        sub._move(target)
        if target is SubState.TERMINATED:
            sub.reason = reason
            self._forget(sub)
        return request

    def _forget(self, sub: Subscription) -> None:
        if self.subscriptions.get(sub.key) is sub:
            del self.subscriptions[sub.key]
        if sub.owns_dialog and not any(other.dialog is sub.dialog for other in self.subscriptions.values()):
            sub.dialog.terminate()  # §4.4.1: the dialog ends with its last usage
            self.dialogs.discard(sub.dialog)

    # --- responses to NOTIFYs ---------------------------------------------------------------------

    def _for_notify(self, notify: Request) -> Subscription | None:
        try:
            event = parse_event(notify.get("Event") or "")
        except SipParseError:
            return None
        key = (DialogId(notify.call_id, notify.from_.tag or "", notify.to.tag or ""), event.package, event.id)
        return self.subscriptions.get(key)

    def receive_notify_response(self, notify: Request, response: Response) -> Subscription | None:
        """§4.2.2: the subscriber's answer to a NOTIFY we sent; the subscription it ended, if any.

        481 ends the subscription (MUST), as does 408; so does any other failure without
        Retry-After, except 401/407, which the TU may answer with credentials.
        """
        status = response.status
        if status < 300 or status in (401, 407):
            return None
        if status not in (408, 481) and "retry-after" in response:
            return None
        return self._drop(self._for_notify(notify), "rejected" if status == 481 else "giveup")

    def notify_timed_out(self, notify: Request) -> Subscription | None:
        """§4.2.2: Timer F fired on a NOTIFY; the subscription is removed."""
        return self._drop(self._for_notify(notify), "timeout")

    def _drop(self, sub: Subscription | None, reason: str) -> Subscription | None:
        if sub is None or sub.terminated:
            return None
        sub._move(SubState.TERMINATED)
        sub.reason = reason
        self._forget(sub)
        return sub

    # --- time ------------------------------------------------------------------------------------

    def _arm(self, sub: Subscription, deadline: float) -> None:
        sub.expires_at = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), sub))

    def next_deadline(self) -> float | None:
        """When the next subscription runs out (call `expire` then)."""
        heap = self._heap
        while heap:
            deadline, _, sub = heap[0]
            if not sub.terminated and sub.expires_at == deadline:
                return deadline
            heapq.heappop(heap)  # refreshed or ended since
        return None

    def expire(self, now: float) -> list[Request]:
        """§4.2.2: end every subscription whose time is up; their final NOTIFYs (reason=timeout)."""
        out: list[Request] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, sub = heapq.heappop(heap)
            if sub.terminated or sub.expires_at != deadline:
                continue
            out.append(self._notify(sub, now, sub.body, sub.content_type, SubState.TERMINATED, "timeout", None))
        return out


# --- subscriber -------------------------------------------------------------------------------------

# §4.1.3: reasons after which a new subscription should not be attempted
_FINAL_REASONS = frozenset({"rejected", "noresource", "invariant"})


@dataclass(eq=False)
class ClientSubscription:
    """A subscription we hold (§4.1): create with `new` (SUBSCRIBE) or `for_refer` (RFC 3515)."""

    event: Event
    request: Request  # the SUBSCRIBE or REFER that asked for it
    expires: int | None = 3600  # what we ask for when refreshing; None for a REFER
    accept: str | None = None
    refresh_margin: float = 32.0  # refresh this long before expiry: a refresh that times out (64*T1) still fits
    state: SubState = SubState.INIT
    dialog: Dialog | None = None
    expires_at: float | None = None
    granted: int | None = None  # the duration last granted, by a 2xx or a NOTIFY
    reason: str | None = None  # once terminated by a NOTIFY (§4.1.3)
    retry_after: int | None = None
    failure: int | None = None  # once terminated by a failure response: its status
    min_expires: int | None = None  # from a 423 (§4.1.2.1)
    terminated_at: float | None = None
    last_notify: Request | None = None  # the last NOTIFY accepted; the TU reads its body
    user_data: Any = None
    owns_dialog: bool = False
    unsubscribing: bool = False

    @classmethod
    def new(
        cls,
        event: str,
        target: Uri | str,
        via: str,
        *,
        local: str,
        contact: str,
        expires: int = 3600,
        accept: str | None = None,
        to: str | None = None,
        route: Sequence[str] = (),
        call_id: str | None = None,
        tag: str | None = None,
        cseq: int = 1,
        headers: Iterable[tuple[str, str]] = (),
    ) -> ClientSubscription:
        """§4.1.2.1: a new subscription to `event` at `target`; send its `request`.

        `local` is our address for From (a tag is added), `to` the To (default: the target), `route`
        a preloaded route set (§8.1.1.1, e.g. an outbound proxy ``<sip:proxy;lr>``).
        """
        uri = parse_uri(target) if isinstance(target, str) else target
        from_ = parse_name_addr(local, "From").with_tag(tag or new_tag())
        out: list[tuple[str, str]] = [("Via", via)]
        if route:
            out.append(("Route", ", ".join(route)))
        out += [
            ("Max-Forwards", MAX_FORWARDS),
            ("From", str(from_)),
            ("To", to or str(NameAddr(uri))),
            ("Call-ID", call_id or secrets.token_hex(12)),
            ("CSeq", f"{cseq} SUBSCRIBE"),
            ("Contact", contact),
            ("Event", event),
            ("Expires", str(expires)),
        ]
        if accept:
            out.append(("Accept", accept))
        out.extend(headers)
        out.append(("Content-Length", "0"))
        request = Request("SUBSCRIBE", uri, out)
        return cls(event=parse_event(event), request=request, expires=expires, accept=accept)

    @classmethod
    def for_refer(cls, refer: Request, dialog: Dialog | None = None) -> ClientSubscription:
        """RFC 3515 §2.4.4: the implicit subscription of a REFER we sent (in `dialog`, if in one)."""
        if refer.method != "REFER":
            raise SubscriptionError(f"not a REFER: {refer.method}")
        return cls(event=Event("refer", str(refer.cseq.seq)), request=refer, expires=None, dialog=dialog)

    @property
    def terminated(self) -> bool:
        return self.state is SubState.TERMINATED

    def _move(self, new: SubState) -> None:
        if new is not self.state:
            _check(self.state, new, f"client subscription {self.event}")
            self.state = new

    def _end(self, now: float, *, reason: str | None = None, failure: int | None = None) -> None:
        if self.terminated:
            return
        self._move(SubState.TERMINATED)
        self.reason, self.failure, self.terminated_at = reason, failure, now
        self.expires_at = None
        if self.owns_dialog and self.dialog is not None:
            self.dialog.terminate()  # §4.4.1: the dialog ends with its only usage

    def _grant(self, seconds: int, now: float) -> None:
        self.granted = seconds
        self.expires_at = now + seconds

    # --- responses to our SUBSCRIBEs ----------------------------------------------------------

    def receive_response(self, request: Request, response: Response, now: float) -> None:
        """The response to `request`: our first SUBSCRIBE (or REFER), a refresh, or an unsubscribe.

        A 2xx creates the dialog unless a NOTIFY did (§4.1.2.4) and sets the expiry (§4.1.2.1). A
        failure of the first request ends the subscription; a 481 to a refresh too; any other
        failure of a refresh leaves it valid until its known expiry (§4.1.2.2).
        """
        status = response.status
        if status < 200 or self.terminated:
            return
        initial = request.to.tag is None
        if status < 300:
            if self.dialog is None and initial:
                self.dialog = Dialog.uac(request, response)
                self.owns_dialog = True
            elif self.dialog is not None and not initial:
                self.dialog.receive_response(request, response)
            if request.method == "SUBSCRIBE":
                granted = response.expires if response.expires is not None else request.expires
                if granted:
                    self._grant(granted, now)
            return
        if status == 423:
            self.min_expires = bounded_int((response.get("Min-Expires") or "").strip(), MAX_DELTA)
        if initial or status == 481:
            self._end(now, failure=status)
        # Any other failure of a refresh, 408 included, leaves the subscription to its known expiry:
        # §4.1.2.2 says so, and the dialog is kept for it (RFC 5057 rather than RFC 3261 §12.2.1.2).

    # --- NOTIFYs in ----------------------------------------------------------------------------

    def matches(self, notify: Request) -> bool:
        """Whether `notify` is for this subscription: its dialog (or, before there is one, the Call-ID
        and our From tag, §4.1.2.4), its package, its id (a REFER's first NOTIFY may omit it)."""
        if notify.method != "NOTIFY":
            return False
        try:
            event = parse_event(notify.get("Event") or "")
        except SipParseError:
            return False
        if event.package != self.event.package:
            return False
        if event.id != self.event.id and not (self.event.package == "refer" and event.id is None):
            return False
        if self.dialog is not None:
            return DialogId.of_request(notify) == self.dialog.id
        return notify.call_id == self.request.call_id and notify.to.tag == self.request.from_.tag

    def receive_notify(self, notify: Request, now: float) -> Verdict:
        """§4.1.3: a NOTIFY; the verdict the TU answers it with (accepted: 200 OK).

        The body is the TU's to read (`last_notify`). A NOTIFY that names no subscription of ours —
        from a second fork, or after we ended — gets 481, which ends it at the notifier (§4.1.4).
        """
        if self.terminated or not self.matches(notify):
            return Verdict(False, 481, "Subscription Does Not Exist")
        raw = notify.get("Subscription-State")
        if raw is None:
            return Verdict(False, 400, "Bad Request - Missing Subscription-State")
        try:
            status = parse_subscription_state(raw)
        except SipParseError as exc:
            return Verdict(False, 400, exc.reason)
        if self.dialog is None:
            try:
                self.dialog = Dialog.from_notify(self.request, notify)
            except DialogError as exc:
                return Verdict(False, 400, f"Bad Request - {exc}")
            self.owns_dialog = True
        else:
            verdict = self.dialog.receive_request(notify)
            if not verdict.accepted:
                return verdict
        self.last_notify = notify
        if status.state == "terminated":
            self.retry_after = status.retry_after
            self._end(now, reason=status.reason)
        elif status.state in ("active", "pending"):
            self._move(SubState.ACTIVE if status.state == "active" else SubState.PENDING)
            if status.expires is not None:  # §4.1.3: the notifier may have shortened it
                self._grant(status.expires, now)
        # an extension state we do not know leaves ours as it was
        return ACCEPT

    # --- requests out ---------------------------------------------------------------------------

    def refresh(self, via: str, expires: int | None = None) -> Request:
        """§4.1.2.2: a refreshing SUBSCRIBE in the subscription's dialog."""
        if self.terminated or self.dialog is None:
            raise SubscriptionError("nothing to refresh: the subscription has no dialog or has ended")
        seconds = expires if expires is not None else (self.expires if self.expires is not None else 3600)
        self.unsubscribing = seconds == 0
        return self.dialog.subscribe(via, str(self.event), seconds, accept=self.accept)

    def unsubscribe(self, via: str) -> Request:
        """§4.1.2.3: SUBSCRIBE with Expires 0; the final NOTIFY that follows ends the subscription."""
        return self.refresh(via, 0)

    # --- time ------------------------------------------------------------------------------------

    @property
    def refresh_at(self) -> float | None:
        """When to send a refresh: `refresh_margin` before expiry, or half way for short grants."""
        if self.terminated or self.unsubscribing or self.expires_at is None or not self.granted:
            return None
        return self.expires_at - min(self.refresh_margin, self.granted / 2)

    def next_deadline(self) -> float | None:
        """The refresh time, or the expiry itself when no refresh is due (`expire` then)."""
        refresh = self.refresh_at
        return refresh if refresh is not None else (None if self.terminated else self.expires_at)

    def expire(self, now: float) -> bool:
        """Time is up without a refresh: the subscription ends here (§4.1.2.2). Whether it did now."""
        if self.terminated or self.expires_at is None or now < self.expires_at:
            return False
        self._end(now, reason="timeout")
        return True

    @property
    def retry_at(self) -> float | None:
        """§4.1.3: once terminated, the earliest time to subscribe again, or None for "do not".

        rejected, noresource and invariant mean never; a failure response leaves it to the TU
        (None); otherwise after retry-after, if given, else at once.
        """
        if not self.terminated or self.terminated_at is None or self.failure is not None:
            return None
        if self.reason in _FINAL_REASONS:
            return None
        return self.terminated_at + (self.retry_after or 0)


# --- bodies: message-summary (RFC 3842 §5.2) and sipfrag (RFC 3420) ------------------------------------


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """``new/old (urgent-new/urgent-old)`` of one message-context-class (RFC 3842 §5.2)."""

    new: int = 0
    old: int = 0
    urgent_new: int = 0
    urgent_old: int = 0

    def __str__(self) -> str:
        urgent = f" ({self.urgent_new}/{self.urgent_old})" if self.urgent_new or self.urgent_old else ""
        return f"{self.new}/{self.old}{urgent}"


# message-context-class (RFC 3458 §6.2) -> the header name of its summary line
MESSAGE_CLASSES: Mapping[str, str] = {
    "voice": "Voice-Message",
    "fax": "Fax-Message",
    "pager": "Pager-Message",
    "multimedia": "Multimedia-Message",
    "text": "Text-Message",
    "none": "None",
}
_CLASS_OF = {name.lower(): cls for cls, name in MESSAGE_CLASSES.items()}
_SUMMARY_LINE = re.compile(
    r"[ \t]*([0-9]+)[ \t]*/[ \t]*([0-9]+)(?:[ \t]*\([ \t]*([0-9]+)[ \t]*/[ \t]*([0-9]+)[ \t]*\))?[ \t]*"
)


@dataclass(frozen=True)
class MessageSummary:
    """A parsed message-summary body: the status, the account and the counts per class."""

    waiting: bool
    account: str | None = None
    counts: Mapping[str, MessageCounts] = field(default_factory=dict)


def message_summary(
    *,
    account: str | None = None,
    waiting: bool | None = None,
    voice: MessageCounts | None = None,
    fax: MessageCounts | None = None,
    pager: MessageCounts | None = None,
    multimedia: MessageCounts | None = None,
    text: MessageCounts | None = None,
    none: MessageCounts | None = None,
) -> bytes:
    """An ``application/simple-message-summary`` body (RFC 3842 §5.2).

    ``Messages-Waiting`` is `waiting`, by default yes when any class has new messages.
    """
    given = {"voice": voice, "fax": fax, "pager": pager, "multimedia": multimedia, "text": text, "none": none}
    counts = {cls: c for cls, c in given.items() if c is not None}
    for c in counts.values():
        if min(c.new, c.old, c.urgent_new, c.urgent_old) < 0 or max(c.new, c.old) > MAX_DELTA:
            raise ValueError(f"message counts out of range: {c}")
    if waiting is None:
        waiting = any(c.new > 0 for c in counts.values())
    lines = [f"Messages-Waiting: {'yes' if waiting else 'no'}"]
    if account:
        lines.append(f"Message-Account: {account}")
    lines += [f"{MESSAGE_CLASSES[cls]}: {c}" for cls, c in counts.items()]
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_message_summary(body: bytes) -> MessageSummary:
    """An RFC 3842 §5.2 body; the optional message headers after the blank line are ignored."""
    text = body.decode("utf-8", "replace")
    waiting: bool | None = None
    account: str | None = None
    counts: dict[str, MessageCounts] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if waiting is not None:
                break  # opt-msg-headers follow
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(400, "Bad Request - Malformed Message Summary", detail=line[:80])
        key, value = name.strip().lower(), value.strip()
        if key == "messages-waiting":
            if value.lower() not in ("yes", "no"):
                raise SipParseError(400, "Bad Request - Malformed Message Summary", detail=line[:80])
            waiting = value.lower() == "yes"
        elif key == "message-account":
            account = value
        elif key in _CLASS_OF:
            m = _SUMMARY_LINE.fullmatch(value)
            if m is None:
                raise SipParseError(400, "Bad Request - Malformed Message Summary", detail=line[:80])
            new, old, urgent_new, urgent_old = (int(g) if g else 0 for g in m.groups())
            counts[_CLASS_OF[key]] = MessageCounts(new, old, urgent_new, urgent_old)
    if waiting is None:
        raise SipParseError(400, "Bad Request - Malformed Message Summary", detail="no Messages-Waiting line")
    return MessageSummary(waiting, account, counts)


def sipfrag(status: int, reason: str | None = None) -> bytes:
    """A ``message/sipfrag`` body holding one Status-Line (RFC 3420 §2; RFC 3515 §2.4.5), CRLF included."""
    if not 100 <= status <= 699:
        raise ValueError(f"not a SIP status: {status}")
    phrase = REASON_PHRASES.get(status, "") if reason is None else reason
    return f"{SIP_VERSION} {status} {phrase}\r\n".encode()


_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2}) ([^\r\n]*)")


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """The status and reason of a sipfrag body's Status-Line (what a referrer reads, RFC 3515 §2.4.5)."""
    first = body.decode("utf-8", "replace").split("\r\n", 1)[0].split("\n", 1)[0]
    m = _STATUS_LINE.fullmatch(first.strip())
    if m is None:
        raise SipParseError(400, "Bad Request - Malformed sipfrag", detail=first[:80])
    return int(m.group(1)), m.group(2)
