"""RFC 3261 §17 / RFC 6026 transactions on a virtual clock: every timer, retransmission and state."""

from __future__ import annotations

import itertools

import pytest

from voxswitch.sip.message import Request, Response, build_response, parse_message
from voxswitch.sip.stack import ack_for_non_2xx, new_branch
from voxswitch.sip.transaction import (
    Deliver,
    ICState,
    IllegalTransition,
    InviteServerTransaction,
    ISState,
    Merged,
    NCState,
    NonInviteServerTransaction,
    NSState,
    Send,
    Target,
    Terminated,
    Timeout,
    Timers,
    TransactionLayer,
)

UDP = Target("UDP", "192.0.2.10", 5060)
TCP = Target("TCP", "192.0.2.10", 5060)


def make_request(method: str = "INVITE", branch: str | None = None, to_tag: str | None = None) -> Request:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return Request(
        method,
        "sip:bob@example.com",
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={branch or new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", to),
            ("Call-ID", "call-1@example.com"),
            ("CSeq", f"1 {method}"),
            ("Content-Length", "0"),
        ],
    )


def layer() -> TransactionLayer:
    return TransactionLayer(Timers(t1=0.5, t2=4.0, t4=5.0), ack_builder=ack_for_non_2xx)


def sends(actions: list) -> list:  # type: ignore[type-arg]
    return [a.message for a in actions if isinstance(a, Send)]


def run_until(tl: TransactionLayer, end: float) -> list[tuple[float, object]]:
    """Advance the virtual clock deadline by deadline until `end`; what happened, and when."""
    log: list[tuple[float, object]] = []
    while (deadline := tl.next_deadline()) is not None and deadline <= end:
        log.extend((deadline, a) for a in tl.expire(deadline))
    return log


def test_invite_client_timer_a_doubles_and_timer_b_times_out() -> None:
    tl = layer()
    txn, actions = tl.request(make_request(), UDP, now=0.0)
    assert len(sends(actions)) == 1 and txn.state is ICState.CALLING
    log = run_until(tl, 40.0)
    retransmits = [t for t, a in log if isinstance(a, Send)]
    # Timer A: T1, 2T1, 4T1 ... (§17.1.1.2); Timer B fires at 64*T1 = 32 s
    assert retransmits == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert any(isinstance(a, Timeout) for _, a in log) and txn.state is ICState.TERMINATED
    assert [t for t, a in log if isinstance(a, Timeout)] == [32.0]
    assert tl.transactions == {}


def test_invite_client_over_tcp_does_not_retransmit() -> None:
    tl = layer()
    tl.request(make_request(), TCP, now=0.0)
    log = run_until(tl, 40.0)
    assert not [a for _, a in log if isinstance(a, Send)]
    assert [t for t, a in log if isinstance(a, Timeout)] == [32.0]


def test_invite_client_non_2xx_is_acked_in_transaction_and_absorbed_in_completed() -> None:
    tl = layer()
    req = make_request()
    txn, _ = tl.request(req, UDP, now=0.0)
    ringing = build_response(req, 180, to_tag="b1")
    out = tl.receive(ringing, UDP, now=0.2)
    assert txn.state is ICState.PROCEEDING and isinstance(out[0], Deliver)
    busy = build_response(req, 486, to_tag="b1")
    out = tl.receive(busy, UDP, now=1.0)
    acks = sends(out)
    assert txn.state is ICState.COMPLETED and len(acks) == 1
    ack = acks[0]
    # §17.1.1.3: same Request-URI, Call-ID, From, branch; To from the response; CSeq number, method ACK
    assert ack.method == "ACK" and str(ack.uri) == str(req.uri) and ack.top_via.branch == req.top_via.branch
    assert ack.to.tag == "b1" and ack.cseq.seq == 1 and ack.cseq.method == "ACK"
    # a retransmitted 486 is ACKed again but not delivered twice
    again = tl.receive(busy, UDP, now=1.5)
    assert len(sends(again)) == 1 and not [a for a in again if isinstance(a, Deliver)]
    log = run_until(tl, 40.0)  # Timer D: 32 s on UDP
    assert [t for t, a in log if isinstance(a, Terminated)] == [33.0]


def test_invite_client_2xx_moves_to_accepted_and_passes_retransmissions_up() -> None:
    tl = layer()
    req = make_request()
    txn, _ = tl.request(req, UDP, now=0.0)
    ok = build_response(req, 200, to_tag="b1")
    first = tl.receive(ok, UDP, now=0.1)
    assert txn.state is ICState.ACCEPTED and not sends(first)  # the TU ACKs a 2xx, not us
    again = tl.receive(ok, UDP, now=0.6)
    assert [a for a in again if isinstance(a, Deliver)]  # RFC 6026 §8.4
    log = run_until(tl, 100.0)  # Timer M = 64*T1
    assert [t for t, a in log if isinstance(a, Terminated)] == [32.1]


def test_non_invite_client_timer_e_caps_at_t2_and_f_times_out() -> None:
    tl = layer()
    tl.request(make_request("OPTIONS"), UDP, now=0.0)
    log = run_until(tl, 40.0)
    times = [t for t, a in log if isinstance(a, Send)]
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]  # 0.5, 1, 2, 4, then T2 = 4 each time
    assert all(b - a == pytest.approx(4.0) for a, b in itertools.pairwise(times[3:]))
    assert [t for t, a in log if isinstance(a, Timeout)] == [32.0]


def test_non_invite_client_provisional_sets_t2_interval_and_timer_k() -> None:
    tl = layer()
    req = make_request("REGISTER")
    txn, _ = tl.request(req, UDP, now=0.0)
    tl.receive(build_response(req, 100), UDP, now=0.1)
    assert txn.state is NCState.PROCEEDING
    log = run_until(tl, 5.0)
    assert [t for t, a in log if isinstance(a, Send)] == [0.5, 4.5]  # Proceeding: retransmit every T2
    tl.receive(build_response(req, 200, to_tag="r"), UDP, now=5.0)
    assert txn.state is NCState.COMPLETED
    log = run_until(tl, 20.0)
    assert [t for t, a in log if isinstance(a, Terminated)] == [10.0]  # Timer K = T4


def test_invite_server_retransmits_final_until_ack_then_timer_i() -> None:
    tl = layer()
    req = make_request()
    out = tl.receive(req, UDP, now=0.0)
    txn = out[0].transaction
    assert isinstance(txn, InviteServerTransaction) and txn.state is ISState.PROCEEDING
    # a retransmitted INVITE before any response is absorbed, not delivered again
    assert tl.receive(req, UDP, now=0.1) == []
    tl.respond(txn, build_response(req, 180, to_tag="t"), now=0.2)
    assert sends(tl.receive(req, UDP, now=0.3))[0].status == 180  # answered with the last response
    tl.respond(txn, build_response(req, 404, to_tag="t"), now=1.0)
    log = run_until(tl, 2.6)
    assert [t for t, a in log if isinstance(a, Send)] == [1.5, 2.5]  # Timer G: T1, 2T1, ... capped at T2
    ack = ack_for_non_2xx(req, build_response(req, 404, to_tag="t"))
    tl.receive(ack, UDP, now=2.7)
    assert txn.state is ISState.CONFIRMED
    log = run_until(tl, 10.0)
    assert [t for t, a in log if isinstance(a, Terminated)] == [7.7]  # Timer I = T4


def test_invite_server_timer_h_when_the_ack_never_comes() -> None:
    tl = layer()
    req = make_request()
    txn = tl.receive(req, UDP, now=0.0)[0].transaction
    tl.respond(txn, build_response(req, 486, to_tag="t"), now=0.0)
    log = run_until(tl, 40.0)
    assert [t for t, a in log if isinstance(a, Timeout)] == [32.0]  # Timer H = 64*T1


def test_invite_server_2xx_goes_to_accepted_and_the_ack_goes_to_the_tu() -> None:
    tl = layer()
    req = make_request()
    txn = tl.receive(req, UDP, now=0.0)[0].transaction
    tl.respond(txn, build_response(req, 200, to_tag="t"), now=0.0)
    assert txn.state is ISState.ACCEPTED
    assert tl.receive(req, UDP, now=0.5) == []  # RFC 6026 §7.1: INVITE retransmissions absorbed
    ack = make_request("ACK", branch=new_branch(), to_tag="t")
    delivered = tl.receive(ack, UDP, now=0.6)
    assert isinstance(delivered[0], Deliver) and delivered[0].transaction is None
    with pytest.raises(IllegalTransition):
        tl.respond(txn, build_response(req, 486, to_tag="t"), now=0.7)
    log = run_until(tl, 40.0)
    assert [t for t, a in log if isinstance(a, Terminated)] == [32.0]  # Timer L


def test_non_invite_server_repeats_final_and_timer_j() -> None:
    tl = layer()
    req = make_request("OPTIONS")
    txn = tl.receive(req, UDP, now=0.0)[0].transaction
    assert isinstance(txn, NonInviteServerTransaction) and txn.state is NSState.TRYING
    tl.respond(txn, build_response(req, 200, to_tag="t"), now=0.1)
    assert sends(tl.receive(req, UDP, now=0.2))[0].status == 200
    # Completed lives on as the bytes to repeat, outside the transaction table, until Timer J
    # (64*T1) and the next sweep (at most a second later).
    assert tl.transactions == {} and sends(tl.receive(req, UDP, now=32.0))[0].status == 200
    assert tl.next_deadline() == pytest.approx(32.1 + 1.0)  # Timer J = 64*T1 on UDP, then the sweep
    assert tl.expire(33.1) == [] and tl.next_deadline() is None
    again = tl.receive(req, UDP, now=33.2)
    assert isinstance(again[0], Deliver) and again[0].transaction is not txn  # a new request now


def test_a_stateless_challenge_ends_the_transaction_and_a_retransmission_is_new() -> None:
    tl = layer()
    req = make_request("REGISTER")
    txn = tl.receive(req, UDP, now=0.0)[0].transaction
    out = tl.respond(txn, build_response(req, 401, to_tag="t"), now=0.1, stateless=True)
    assert [m.status for m in sends(out)] == [401] and any(isinstance(a, Terminated) for a in out)
    assert txn.state is NSState.TERMINATED and tl.transactions == {} and tl.next_deadline() is None
    again = tl.receive(req, UDP, now=0.6)  # §26.3.2.4: not absorbed, the TU challenges it afresh
    assert isinstance(again[0], Deliver) and again[0].transaction is not txn


def test_merged_request_is_detected() -> None:
    tl = layer()
    first = make_request("MESSAGE")
    tl.receive(first, UDP, now=0.0)
    # the same request forked back to us by another path: same From tag, Call-ID, CSeq; new branch
    second = make_request("MESSAGE")
    out = tl.receive(second, UDP, now=0.1)
    assert len(out) == 1 and isinstance(out[0], Merged)


def test_responses_match_by_branch_and_method_only() -> None:
    tl = layer()
    req = make_request("OPTIONS")
    txn, _ = tl.request(req, UDP, now=0.0)
    wire = build_response(req, 200, to_tag="x").to_bytes().replace(b"OPTIONS", b"INVITE")
    out = tl.receive(parse_message(wire), UDP, now=0.1)
    assert isinstance(out[0], Deliver) and out[0].transaction is None  # not ours: CSeq method differs
    assert txn.state is NCState.TRYING


def test_rfc2543_requests_without_magic_cookie_still_match() -> None:
    tl = layer()
    req = make_request("INVITE", branch="oldstyle1")
    txn = tl.receive(req, UDP, now=0.0)[0].transaction
    tl.respond(txn, build_response(req, 603, to_tag="t"), now=0.0)
    ack = ack_for_non_2xx(req, Response(603, headers=[("To", "<sip:bob@example.com>;tag=t")]))
    tl.receive(ack, UDP, now=0.1)
    assert txn.state is ISState.CONFIRMED
