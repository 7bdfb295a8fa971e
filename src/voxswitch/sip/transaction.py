"""SIP transactions (RFC 3261 §17, amended by RFC 6026 and RFC 4320), sans-I/O.

Theory of operation
-------------------
`TransactionLayer` is fed three kinds of input and answers each with a list of *actions*:

- `receive(message, source, now)`   a message the transport parsed;
- `request(request, target, now)`   / `respond(txn, response, now)`  what the transaction user (TU)
  wants sent;
- `expire(now)`                     time passing, once `next_deadline()` is reached.

Actions are `Send` (a message for the transport), `Deliver` (a request, a response or an ACK for the
TU), `Timeout` and `Terminated` (a transaction's end, for the TU's bookkeeping). Nothing here reads a
clock or touches a socket; the asyncio shell keeps one timer armed at `next_deadline()`.

Each transaction is a small state machine. States are Enums and the allowed moves are a table:
a move that is not in the table raises `IllegalTransition` (a bug, never a peer's doing). Timers
live in one heap for the whole layer; cancelling a timer just forgets its deadline, and stale heap
entries are skipped when popped.

A non-INVITE server transaction that has sent its final response over UDP has one job left: repeat
that response to retransmissions until Timer J (64*T1). The layer then *retires* it: the object is
dropped and the layer keeps the response bytes and the address in plain tuples, which the garbage
collector does not track, swept once a second once their Timer J has passed (so a retired
transaction lasts J to J + 1 s). Under load these are most of the live transactions.

Matching follows §17.1.3 (client: top Via branch + CSeq method) and §17.2.3 (server: branch +
sent-by + method, with ACK matching its INVITE). Requests whose branch lacks the RFC 3261 magic
cookie fall back to the RFC 2543 key of §17.2.3 (Request-URI, tags, Call-ID, CSeq, top Via).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from voxswitch.sip.message import Request, Response, SipMessage

MAGIC_COOKIE = "z9hG4bK"
SWEEP_INTERVAL = 1.0  # retired transactions are forgotten this long after their Timer J, at most


@dataclass(frozen=True)
class Timers:
    """RFC 3261 §17.1.1.1 / Table 4 timer values, configurable per deployment."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def b(self) -> float:  # also F, H, J, L, M: 64*T1
        return 64 * self.t1


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes or came from. `transport` is UDP, TCP, TLS, WS or WSS."""

    transport: str
    host: str
    port: int
    connection: Any = None  # the stream a reliable message came on, for answering on it

    @property
    def reliable(self) -> bool:
        return self.transport.upper() != "UDP"


class IllegalTransition(RuntimeError):
    pass


# --- actions -----------------------------------------------------------------------------------


class SentResponse:
    """A final response kept only as the bytes to repeat (and its status).

    A non-INVITE server transaction lives 64*T1 (32 s) after its answer, to absorb retransmissions
    (§17.2.2). At a thousand requests a second that is tens of thousands of live transactions; held
    as parsed messages they make every full garbage collection a pause long enough to overflow the
    UDP receive buffer. Bytes are invisible to the collector.
    """

    __slots__ = ("data", "status")

    def __init__(self, response: Response) -> None:
        self.data = response.to_bytes()
        self.status = response.status

    @classmethod
    def of(cls, data: bytes) -> SentResponse:
        """The response kept by a retired transaction (its status read back from the bytes)."""
        sent = cls.__new__(cls)
        sent.data = data
        sent.status = int(data[8:11])  # "SIP/2.0 200 ..."
        return sent

    def to_bytes(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class Send:
    message: SipMessage | SentResponse
    target: Target


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message for the TU. `transaction` is None for a 2xx ACK or a stray response (§17.1.1.2)."""

    message: SipMessage
    source: Target | None
    transaction: Transaction | None


@dataclass(frozen=True, slots=True)
class Timeout:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class TransportFailed:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class Terminated:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class Merged:
    """§8.2.2.2: the same request reached us twice by different paths; answer 482 statelessly."""

    request: Request
    source: Target


Action = Send | Deliver | Timeout | TransportFailed | Terminated | Merged


# --- states ------------------------------------------------------------------------------------


class ICState(Enum):
    """INVITE client transaction, §17.1.1 with RFC 6026 §8.4 (Accepted)."""

    CALLING = "calling"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class NCState(Enum):
    """Non-INVITE client transaction, §17.1.2."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class ISState(Enum):
    """INVITE server transaction, §17.2.1 with RFC 6026 §7.1 (Accepted)."""

    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class NSState(Enum):
    """Non-INVITE server transaction, §17.2.2."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


_IC, _NC, _IS, _NS = ICState, NCState, ISState, NSState
TRANSITIONS: dict[type[Enum], set[tuple[Enum, Enum]]] = {
    ICState: {
        (_IC.CALLING, _IC.PROCEEDING),
        (_IC.CALLING, _IC.COMPLETED),
        (_IC.CALLING, _IC.ACCEPTED),
        (_IC.CALLING, _IC.TERMINATED),
        (_IC.PROCEEDING, _IC.PROCEEDING),
        (_IC.PROCEEDING, _IC.COMPLETED),
        (_IC.PROCEEDING, _IC.ACCEPTED),
        (_IC.PROCEEDING, _IC.TERMINATED),
        (_IC.COMPLETED, _IC.TERMINATED),
        (_IC.ACCEPTED, _IC.TERMINATED),
    },
    NCState: {
        (_NC.TRYING, _NC.PROCEEDING),
        (_NC.TRYING, _NC.COMPLETED),
        (_NC.TRYING, _NC.TERMINATED),
        (_NC.PROCEEDING, _NC.PROCEEDING),
        (_NC.PROCEEDING, _NC.COMPLETED),
        (_NC.PROCEEDING, _NC.TERMINATED),
        (_NC.COMPLETED, _NC.TERMINATED),
    },
    ISState: {
        (_IS.PROCEEDING, _IS.PROCEEDING),
        (_IS.PROCEEDING, _IS.COMPLETED),
        (_IS.PROCEEDING, _IS.ACCEPTED),
        (_IS.PROCEEDING, _IS.TERMINATED),
        (_IS.COMPLETED, _IS.CONFIRMED),
        (_IS.COMPLETED, _IS.TERMINATED),
        (_IS.CONFIRMED, _IS.TERMINATED),
        (_IS.ACCEPTED, _IS.TERMINATED),
    },
    NSState: {
        (_NS.TRYING, _NS.PROCEEDING),
        (_NS.TRYING, _NS.COMPLETED),
        (_NS.TRYING, _NS.TERMINATED),
        (_NS.PROCEEDING, _NS.PROCEEDING),
        (_NS.PROCEEDING, _NS.COMPLETED),
        (_NS.PROCEEDING, _NS.TERMINATED),
        (_NS.COMPLETED, _NS.TERMINATED),
    },
}


# --- transactions ------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Transaction:
    """What every transaction shares: its key, request, peer, state and armed timers."""

    key: tuple[Any, ...]
    request: Request
    target: Target
    layer: TransactionLayer
    state: Enum
    timers: dict[str, float] = field(default_factory=dict)  # name -> deadline
    last_response: Response | SentResponse | None = None
    user_data: Any = None  # for the TU (the dialog or call a transaction serves)
    merge_key: tuple[Any, ...] | None = None

    @property
    def method(self) -> str:
        return self.request.method if self.request is not None else str(self.key[-1])

    @property
    def terminated(self) -> bool:
        return self.state.value == "terminated"

    def _move(self, new: Enum, out: list[Action]) -> None:
        if (self.state, new) not in TRANSITIONS[type(self.state)]:
            raise IllegalTransition(f"{type(self).__name__}: {self.state.name} -> {new.name}")
        self.state = new
        if self.terminated:
            self.timers.clear()
            self.layer._forget(self)
            out.append(Terminated(self))

    def _arm(self, name: str, delay: float, now: float) -> None:
        deadline = now + delay
        self.timers[name] = deadline
        self.layer._schedule(deadline, self, name)

    def _disarm(self, *names: str) -> None:
        for name in names:
            self.timers.pop(name, None)

    def on_timer(self, name: str, now: float, out: list[Action]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(eq=False, slots=True)
class InviteClientTransaction(Transaction):
    interval: float = 0.0

    def start(self, now: float, out: list[Action]) -> None:
        out.append(Send(self.request, self.target))
        if not self.target.reliable:
            self.interval = self.layer.timers.t1
            self._arm("A", self.interval, now)  # §17.1.1.2: Timer A, retransmit
        self._arm("B", self.layer.timers.b, now)  # Timer B: transaction timeout

    def on_response(self, resp: Response, source: Target | None, now: float, out: list[Action]) -> None:
        code = resp.status
        s = self.state
        if s in (ICState.CALLING, ICState.PROCEEDING):
            self._disarm("A")
            if code < 200:
                self._move(ICState.PROCEEDING, out)
                out.append(Deliver(resp, source, self))
            elif code < 300:
                # RFC 6026 §8.4: 2xx moves to Accepted; the TU ACKs it end to end.
                self._disarm("B")
                self._move(ICState.ACCEPTED, out)
                self._arm("M", self.layer.timers.b, now)
                out.append(Deliver(resp, source, self))
            else:
                self._disarm("B")
                self.last_response = resp
                out.append(Send(self.layer.ack_for(self.request, resp), self.target))  # §17.1.1.3
                self._move(ICState.COMPLETED, out)
                self._arm("D", 0.0 if self.target.reliable else 32.0, now)  # Timer D: >= 32 s on UDP
                out.append(Deliver(resp, source, self))
        elif s is ICState.COMPLETED and code >= 300:
            out.append(Send(self.layer.ack_for(self.request, resp), self.target))  # retransmitted final
        elif s is ICState.ACCEPTED and 200 <= code < 300:
            out.append(Deliver(resp, source, self))  # RFC 6026: 2xx retransmissions go to the TU

    def on_timer(self, name: str, now: float, out: list[Action]) -> None:
        if name == "A" and self.state is ICState.CALLING:
            out.append(Send(self.request, self.target))
            self.interval *= 2  # §17.1.1.2: doubles, no T2 cap for INVITE
            self._arm("A", self.interval, now)
        elif name == "B" and self.state in (ICState.CALLING, ICState.PROCEEDING):
            out.append(Timeout(self))
            self._move(ICState.TERMINATED, out)
        elif name in ("D", "M"):
            self._move(ICState.TERMINATED, out)


@dataclass(eq=False, slots=True)
class NonInviteClientTransaction(Transaction):
    interval: float = 0.0

    def start(self, now: float, out: list[Action]) -> None:
        out.append(Send(self.request, self.target))
        if not self.target.reliable:
            self.interval = self.layer.timers.t1
            self._arm("E", self.interval, now)  # §17.1.2.2: Timer E
        self._arm("F", self.layer.timers.b, now)  # Timer F

    def on_response(self, resp: Response, source: Target | None, now: float, out: list[Action]) -> None:
        if self.state not in (NCState.TRYING, NCState.PROCEEDING):
            return  # Completed absorbs retransmitted finals
        if resp.status < 200:
            self._move(NCState.PROCEEDING, out)
            out.append(Deliver(resp, source, self))
            return
        self._disarm("E", "F")
        self.last_response = resp
        out.append(Deliver(resp, source, self))
        self._move(NCState.COMPLETED, out)
        self._arm("K", 0.0 if self.target.reliable else self.layer.timers.t4, now)  # Timer K

    def on_timer(self, name: str, now: float, out: list[Action]) -> None:
        t = self.layer.timers
        if name == "E" and self.state in (NCState.TRYING, NCState.PROCEEDING):
            out.append(Send(self.request, self.target))
            # §17.1.2.2: doubles up to T2 while Trying; T2 flat once Proceeding
            self.interval = min(self.interval * 2, t.t2) if self.state is NCState.TRYING else t.t2
            self._arm("E", self.interval, now)
        elif name == "F" and self.state in (NCState.TRYING, NCState.PROCEEDING):
            out.append(Timeout(self))
            self._move(NCState.TERMINATED, out)
        elif name == "K":
            self._move(NCState.TERMINATED, out)


@dataclass(eq=False, slots=True)
class InviteServerTransaction(Transaction):
    interval: float = 0.0

    def on_request(self, req: Request, source: Target | None, now: float, out: list[Action]) -> None:
        if req.method == "ACK":
            if self.state is ISState.COMPLETED:
                self._disarm("G", "H")
                self._move(ISState.CONFIRMED, out)
                self._arm("I", 0.0 if self.target.reliable else self.layer.timers.t4, now)  # Timer I
            elif self.state is ISState.ACCEPTED:
                out.append(Deliver(req, source, None))  # RFC 6026 §7.1: a 2xx ACK is the TU's
            return
        # an INVITE retransmission (§17.2.1): repeat the last response, never bother the TU
        if self.state in (ISState.PROCEEDING, ISState.COMPLETED) and self.last_response is not None:
            out.append(Send(self.last_response, self.target))

    def on_tu_response(self, resp: Response, now: float, out: list[Action]) -> None:
        code = resp.status
        if self.state is ISState.ACCEPTED and 200 <= code < 300:
            out.append(Send(resp, self.target))  # the TU retransmits its 2xx (§13.3.1.4)
            return
        if self.state is not ISState.PROCEEDING:
            raise IllegalTransition(f"INVITE server transaction cannot send {code} in {self.state.name}")
        self.last_response = resp
        out.append(Send(resp, self.target))
        if code < 200:
            self._move(ISState.PROCEEDING, out)
        elif code < 300:
            self._move(ISState.ACCEPTED, out)
            self._arm("L", self.layer.timers.b, now)  # RFC 6026 §7.1: Timer L
        else:
            self._move(ISState.COMPLETED, out)
            if not self.target.reliable:
                self.interval = self.layer.timers.t1
                self._arm("G", self.interval, now)  # Timer G: retransmit the final response
            self._arm("H", self.layer.timers.b, now)  # Timer H: give up waiting for the ACK

    def on_timer(self, name: str, now: float, out: list[Action]) -> None:
        if name == "G" and self.state is ISState.COMPLETED and self.last_response is not None:
            out.append(Send(self.last_response, self.target))
            self.interval = min(self.interval * 2, self.layer.timers.t2)
            self._arm("G", self.interval, now)
        elif name == "H" and self.state is ISState.COMPLETED:
            out.append(Timeout(self))  # §17.2.1: the ACK never came
            self._move(ISState.TERMINATED, out)
        elif name in ("I", "L"):
            self._move(ISState.TERMINATED, out)


@dataclass(eq=False, slots=True)
class NonInviteServerTransaction(Transaction):
    def on_request(self, req: Request, source: Target | None, now: float, out: list[Action]) -> None:
        # §17.2.2: retransmissions are answered with the last response, or absorbed while Trying
        if self.last_response is not None:
            out.append(Send(self.last_response, self.target))

    def on_tu_response(self, resp: Response, now: float, out: list[Action], stateless: bool = False) -> None:
        if self.state not in (NSState.TRYING, NSState.PROCEEDING):
            raise IllegalTransition(f"non-INVITE server transaction cannot send {resp.status} in {self.state.name}")
        if resp.status < 200:
            out.append(Send(resp, self.target))
            self.last_response = resp
            self._move(NSState.PROCEEDING, out)
        elif stateless:
            out.append(Send(resp, self.target))
            # §26.3.2.4: a challenge to an unauthenticated request goes out once, without the
            # retransmission machinery, and leaves no state behind; a retransmitted request is
            # simply challenged again (§8.2.7, stateless UAS behaviour).
            self.request = None  # type: ignore[assignment]
            self.user_data = None
            self._move(NSState.TERMINATED, out)
        else:
            # Completed needs only the bytes to repeat: over UDP the layer keeps those and retires
            # this object (see the module docstring); over a reliable transport Timer J is 0.
            self.last_response = SentResponse(resp)
            out.append(Send(self.last_response, self.target))  # serialised once, for now and for repeats
            self.request = None  # type: ignore[assignment]
            self.user_data = None
            self._move(NSState.COMPLETED, out)
            if self.target.reliable:
                self._move(NSState.TERMINATED, out)
            else:
                self.layer._retire(self, self.last_response.data, now + self.layer.timers.b)  # Timer J

    def on_timer(self, name: str, now: float, out: list[Action]) -> None:
        if name == "J":
            self._move(NSState.TERMINATED, out)


ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction


# --- the layer ---------------------------------------------------------------------------------


def _branch(msg: SipMessage) -> str:
    via = msg.top_via
    return via.branch if via is not None and via.branch else ""


def server_key(req: Request) -> tuple[Any, ...]:
    """§17.2.3: branch + sent-by + method (ACK matches the INVITE), or the RFC 2543 fallback."""
    method = "INVITE" if req.method == "ACK" else req.method
    via = req.top_via
    branch = (via.branch or "") if via is not None else ""
    if branch.startswith(MAGIC_COOKIE):
        return ("s", branch, via.host.lower(), via.port, method) if via is not None else ("s", branch, method)
    # RFC 2543 fallback: the ACK carries the To tag the response added, so leave it out.
    return ("s2543", str(req.uri), req.from_.tag, req.call_id, req.cseq.seq, method, str(via))


def client_key(msg: SipMessage) -> tuple[Any, ...]:
    """§17.1.3: the branch of the top Via and the CSeq method."""
    method = msg.cseq.method
    if method == "ACK":
        method = "INVITE"
    return ("c", _branch(msg), method)


class TransactionLayer:
    """All transactions of one SIP endpoint, and the single timer heap that drives them."""

    def __init__(self, timers: Timers | None = None, *, ack_builder: Callable[[Request, Response], Request]) -> None:
        self.timers = timers or Timers()
        self.ack_for = ack_builder
        self.transactions: dict[tuple[Any, ...], Transaction] = {}
        self._merge_index: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # §8.2.2.2 -> server key
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._seq = itertools.count()
        # Retired non-INVITE server transactions: key -> (Timer J, response, host, port, merge key),
        # and their keys in the order their Timer J falls due.
        self._retired: dict[tuple[Any, ...], tuple[float, bytes, str, int, tuple[Any, ...] | None]] = {}
        self._retired_order: deque[tuple[float, tuple[Any, ...]]] = deque()

    # timers ------------------------------------------------------------------------------------

    def _schedule(self, deadline: float, txn: Transaction, name: str) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), txn, name))

    def _forget(self, txn: Transaction) -> None:
        if self.transactions.get(txn.key) is txn:
            del self.transactions[txn.key]
        merge = getattr(txn, "merge_key", None)
        if merge is not None and self._merge_index.get(merge) == txn.key:
            del self._merge_index[merge]

    def _retire(self, txn: NonInviteServerTransaction, response: bytes, timer_j: float) -> None:
        if self.transactions.get(txn.key) is txn:
            del self.transactions[txn.key]  # its merge key stays: §8.2.2.2 applies until Timer J
        target = txn.target
        self._retired[txn.key] = (timer_j, response, target.host, target.port, txn.merge_key)
        self._retired_order.append((timer_j, txn.key))

    def _sweep(self, now: float) -> None:
        order, retired = self._retired_order, self._retired
        while order and order[0][0] <= now:
            timer_j, key = order.popleft()
            record = retired.get(key)
            if record is not None and record[0] == timer_j:
                del retired[key]
                merge = record[4]
                if merge is not None and self._merge_index.get(merge) == key:
                    del self._merge_index[merge]

    def next_deadline(self) -> float | None:
        heap = self._heap
        deadline: float | None = None
        while heap:
            deadline, _, txn, name = heap[0]
            if txn.timers.get(name) == deadline:
                break
            heapq.heappop(heap)  # cancelled or superseded
            deadline = None
        if self._retired_order:
            sweep = self._retired_order[0][0] + SWEEP_INTERVAL  # one wake-up sweeps a second's worth
            deadline = sweep if deadline is None else min(deadline, sweep)
        return deadline

    def expire(self, now: float) -> list[Action]:
        out: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, txn, name = heapq.heappop(heap)
            if txn.timers.get(name) != deadline:
                continue
            del txn.timers[name]
            txn.on_timer(name, now, out)
        self._sweep(now)
        return out

    # from the TU --------------------------------------------------------------------------------

    def request(self, req: Request, target: Target, now: float) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction. The request's top Via must carry a fresh RFC 3261 branch."""
        if req.method == "ACK":
            raise ValueError("an ACK for a 2xx is sent by the TU directly, not in a transaction (§17.1.1.3)")
        key = client_key(req)
        if key in self.transactions:
            raise ValueError(f"branch {key[1]!r} is already in use")
        cls = InviteClientTransaction if req.method == "INVITE" else NonInviteClientTransaction
        initial = ICState.CALLING if req.method == "INVITE" else NCState.TRYING
        txn = cls(key=key, request=req, target=target, layer=self, state=initial)
        self.transactions[key] = txn
        out: list[Action] = []
        txn.start(now, out)
        return txn, out

    def respond(self, txn: ServerTransaction, resp: Response, now: float, *, stateless: bool = False) -> list[Action]:
        """The TU's response. `stateless` (a final response to a non-INVITE request, e.g. a digest
        challenge) ends the transaction as it is sent: no Completed state absorbs retransmissions."""
        out: list[Action] = []
        if stateless and isinstance(txn, NonInviteServerTransaction):
            txn.on_tu_response(resp, now, out, stateless=True)
        else:
            txn.on_tu_response(resp, now, out)
        return out

    def transport_failed(self, txn: Transaction) -> list[Action]:
        """§17.1.4 / §17.2.4: the transport could not deliver; the transaction ends."""
        out: list[Action] = [TransportFailed(txn)]
        if not txn.terminated:
            terminal = type(txn.state)("terminated")
            txn.state = terminal
            txn.timers.clear()
            self._forget(txn)
            out.append(Terminated(txn))
        return out

    # from the transport -------------------------------------------------------------------------

    def receive(self, msg: SipMessage, source: Target, now: float) -> list[Action]:
        out: list[Action] = []
        if isinstance(msg, Response):
            txn = self.transactions.get(client_key(msg))
            if isinstance(txn, InviteClientTransaction | NonInviteClientTransaction):
                txn.on_response(msg, source, now, out)
            else:
                out.append(Deliver(msg, source, None))  # §17.1.1.2: stray 2xx go to the core
            return out
        key = server_key(msg)
        txn = self.transactions.get(key)
        if txn is not None:
            assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
            txn.on_request(msg, source, now, out)
            return out
        retired = self._retired.get(key)
        if retired is not None:  # §17.2.2: Completed repeats its final response
            out.append(Send(SentResponse.of(retired[1]), Target(source.transport, retired[2], retired[3])))
            return out
        if msg.method == "ACK":
            out.append(Deliver(msg, source, None))  # the ACK of a 2xx: end to end, the dialog's
            return out
        merge_key = None
        if msg.to.tag is None:  # §8.2.2.2 merged-request detection, for out-of-dialog requests
            merge_key = (msg.from_.tag, msg.call_id, msg.cseq.seq, msg.method)
            if self._merge_index.get(merge_key, key) != key:
                out.append(Merged(msg, source))
                return out
        if msg.method == "INVITE":
            srv: ServerTransaction = InviteServerTransaction(
                key=key, request=msg, target=source, layer=self, state=ISState.PROCEEDING
            )
        else:
            srv = NonInviteServerTransaction(key=key, request=msg, target=source, layer=self, state=NSState.TRYING)
        self.transactions[key] = srv
        if merge_key is not None:
            srv.merge_key = merge_key
            self._merge_index[merge_key] = key
        out.append(Deliver(msg, source, srv))
        return out

    def find_server(self, req: Request) -> ServerTransaction | None:
        """The server transaction a request (e.g. the INVITE a CANCEL names, §9.2) belongs to."""
        key = server_key(req)
        if req.method == "CANCEL":
            key = (*key[:-1], "INVITE")
        txn = self.transactions.get(key)
        return txn if isinstance(txn, InviteServerTransaction | NonInviteServerTransaction) else None
