"""RFC 3261 §12-§15 dialogs on the RFC 3261 §24 and RFC 3665 call flows: creation, in-dialog
requests (ACK, BYE, re-INVITE, UPDATE, INFO, REFER, MESSAGE), routing, CSeq order, target refresh,
glare, forking and CANCEL. Every request built here goes through parse_message + validate."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sip_dialog.support import load_request, load_response, via, wire, wire_request
from voxswitch.sip.dialog import (
    ACCEPT,
    DROP,
    TRANSITIONS,
    Dialog,
    DialogError,
    DialogId,
    DialogSet,
    DialogState,
    IllegalTransition,
    Role,
    Verdict,
    build_cancel,
    parse_replaces,
    release_surplus,
    replaces_value,
    surplus_dialogs,
)
from voxswitch.sip.headers import parse_name_addr
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.stack import ack_for_non_2xx
from voxswitch.sip.transaction import ISState, Target, Timers, TransactionLayer
from voxswitch.sip.uri import SipUri, parse_uri

SDP = b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def headers_of(msg: Request | Response, *names: str) -> dict[str, str | None]:
    return {name: msg.get(name) for name in names}


def rfc3665_call() -> tuple[Request, Response, Dialog, Dialog]:
    """RFC 3665 §3.1: Alice's INVITE, Bob's 200, and the dialog each of them holds."""
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    ok = load_response("rfc3665-3.1-f3-200.sip")
    alice = Dialog.uac(invite, ok)
    bob = Dialog.uas(invite, ok, first_seq=1)
    return invite, ok, alice, bob


# --- RFC 3261 §24.2 -----------------------------------------------------------------------------------


def test_rfc3261_24_2_caller_dialog_ack_and_bye() -> None:
    invite = load_request("24.2-f1-invite.sip")  # F1 as Alice sent it
    ok = load_response("24.2-f9-200.sip")  # F9 as it reached her
    alice = Dialog.uac(invite, ok)
    assert alice.id == DialogId("a84b4c76e66710", "1928301774", "a6c85cf")
    assert alice.state is DialogState.CONFIRMED and alice.role is Role.UAC
    assert alice.route_set == () and str(alice.remote_target) == "sip:bob@192.0.2.4"
    assert alice.local_seq == 314159 and alice.remote_seq is None and not alice.secure

    ack = wire_request(alice.ack(invite, via("pc33.atlanta.com")))
    f12 = load_request("24.2-f12-ack.sip")  # §24.2 F12: the ACK Alice sends straight to Bob
    assert str(ack.uri) == str(f12.uri) == "sip:bob@192.0.2.4"
    names = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Route")
    assert headers_of(ack, *names) == headers_of(f12, *names)
    assert alice.local_seq == 314159  # an ACK does not move the CSeq (§13.2.2.4)

    bye = wire_request(alice.bye(via("pc33.atlanta.com")))
    assert str(bye.uri) == "sip:bob@192.0.2.4"
    assert bye.cseq == (314160, "BYE") and bye.to.tag == "a6c85cf" and bye.from_.tag == "1928301774"
    assert alice.state is DialogState.TERMINATED  # §15.1.1: at once


def test_rfc3261_24_2_callee_dialog_bye_matches_f13() -> None:
    invite = load_request("24.2-f3-invite.sip")  # the INVITE with Alice's Contact, as proxied
    ok = build_response(invite, 200, to_tag="a6c85cf", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    dialogs = DialogSet()
    bob = dialogs.respond(invite, ok, first_seq=231)
    assert bob is not None and bob.role is Role.UAS and bob.state is DialogState.CONFIRMED
    assert bob.id == DialogId("a84b4c76e66710", "a6c85cf", "1928301774")
    assert bob.remote_seq == 314159 and bob.local_seq is None

    ack = load_request("24.2-f12-ack.sip")
    assert dialogs.receive_request(ack) == (bob, ACCEPT)

    bye = wire_request(bob.bye(via("192.0.2.4")))
    f13 = load_request("24.2-f13-bye.sip")  # §24.2 F13: Bob hangs up
    assert str(bye.uri) == str(f13.uri) == "sip:alice@pc33.atlanta.com"
    names = ("From", "To", "Call-ID", "CSeq", "Max-Forwards")
    assert headers_of(bye, *names) == headers_of(f13, *names)


def test_rfc3261_24_2_caller_receives_bye() -> None:
    dialogs = DialogSet()
    alice = dialogs.add(Dialog.uac(load_request("24.2-f1-invite.sip"), load_response("24.2-f9-200.sip")))
    bye = load_request("24.2-f13-bye.sip")
    dialog, verdict = dialogs.receive_request(bye)
    assert dialog is alice and verdict is ACCEPT
    assert alice.terminated and alice.remote_seq == 231
    assert verdict.response(bye) is None  # accepted: the TU answers 200 (F14)
    # anything after the BYE finds no dialog
    info = bye.copy()
    info.set("CSeq", "232 BYE")
    dialog, verdict = dialogs.receive_request(info)
    assert dialog is None and verdict.status == 481
    response = verdict.response(info)
    assert response is not None and response.status == 481
    assert dialogs.prune() == [alice] and len(dialogs) == 0


# --- RFC 3665 §3.1 / §3.2 --------------------------------------------------------------------------


def test_rfc3665_3_1_early_then_confirmed_and_ack() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    dialogs = DialogSet()
    early = dialogs.receive_response(invite, load_response("rfc3665-3.1-f2-180.sip"))
    assert early is not None and early.state is DialogState.EARLY  # §12.1.2: 1xx with a To tag
    assert early.id == DialogId("3848276298220188511@atlanta.example.com", "9fxced76sl", "8321234356")
    assert str(early.remote_target) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert early.invite_pending
    confirmed = dialogs.receive_response(invite, load_response("rfc3665-3.1-f3-200.sip"))
    assert confirmed is early and early.state is DialogState.CONFIRMED and not early.invite_pending
    ack = wire_request(early.ack(invite, via("client.atlanta.example.com:5060", "TCP")))
    assert str(ack.uri) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert ack.cseq == (1, "ACK") and ack.to.tag == "8321234356" and "route" not in ack
    assert ack.contact == []


def test_rfc3665_3_1_callee_early_then_confirmed_then_bye() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    contact = [("Contact", "<sip:bob@client.biloxi.example.com;transport=tcp>")]
    dialogs = DialogSet()
    ringing = build_response(invite, 180, to_tag="8321234356", headers=contact)
    bob = dialogs.respond(invite, ringing, first_seq=1)
    assert bob is not None and bob.state is DialogState.EARLY
    with pytest.raises(DialogError):
        bob.bye(via("client.biloxi.example.com:5060"))  # §15: not the callee, not on an early dialog
    assert dialogs.respond(invite, build_response(invite, 200, to_tag="8321234356", headers=contact)) is bob
    assert bob.state is DialogState.CONFIRMED and not bob.invite_pending
    bye = wire_request(bob.bye(via("client.biloxi.example.com:5060", "TCP")))
    # RFC 3665 §3.1 F5: BYE to Alice's Contact, CSeq 1, tags turned around
    assert str(bye.uri) == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert bye.cseq == (1, "BYE")
    assert str(bye.from_) == "Bob <sip:bob@biloxi.example.com>;tag=8321234356"
    assert str(bye.to) == "Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl"


def test_callee_early_dialog_ends_with_a_failure_response() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    contact = [("Contact", "<sip:bob@client.biloxi.example.com>")]
    dialogs = DialogSet()
    bob = dialogs.respond(invite, build_response(invite, 180, to_tag="t1", headers=contact))
    assert bob is not None
    assert dialogs.respond(invite, build_response(invite, 486, to_tag="t1")) is bob
    assert bob.terminated  # §12.3


def test_rfc3665_3_2_record_route_reversed_for_caller_kept_for_callee() -> None:
    at_bob = load_request("rfc3665-3.2-f7-invite.sip")
    ok = load_response("rfc3665-3.2-f9-200.sip")
    # Alice's own INVITE: her Via only, preloaded Route to her proxy, no Record-Route yet
    sent = Request("INVITE", "sip:bob@biloxi.example.com", [("Via", via("client.atlanta.example.com:5060", "TCP"))])
    for name in ("Max-Forwards", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type"):
        sent.add(name, at_bob.get(name) or "")
    sent.add("Route", "<sip:ss1.atlanta.example.com;lr>")
    sent.body = at_bob.body
    wire(sent)

    alice = Dialog.uac(sent, ok)
    assert [str(r.uri) for r in alice.route_set] == ["sip:ss1.atlanta.example.com;lr", "sip:ss2.biloxi.example.com;lr"]
    ack = wire_request(alice.ack(sent, via("client.atlanta.example.com:5060", "TCP")))
    assert str(ack.uri) == "sip:bob@client.biloxi.example.com;transport=tcp"  # lr: the target stays
    assert [str(r.uri) for r in ack.route] == ["sip:ss1.atlanta.example.com;lr", "sip:ss2.biloxi.example.com;lr"]
    assert ack.cseq == (2, "ACK")

    bob = Dialog.uas(at_bob, ok, first_seq=1)
    assert [str(r.uri) for r in bob.route_set] == ["sip:ss2.biloxi.example.com;lr", "sip:ss1.atlanta.example.com;lr"]
    bye = wire_request(bob.bye(via("client.biloxi.example.com:5060", "TCP")))
    assert str(bye.uri) == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert [str(r.uri) for r in bye.route] == ["sip:ss2.biloxi.example.com;lr", "sip:ss1.atlanta.example.com;lr"]


# --- routing (§12.2.1.1) ---------------------------------------------------------------------------


def dialog_with_record_route(record_route: str, contact: str = "<sip:user@remoteua>") -> Dialog:
    invite = Request(
        "INVITE",
        "sip:user@example.com",
        [
            ("Via", via("caller.example.com")),
            ("Max-Forwards", "70"),
            ("From", "<sip:caller@example.com>;tag=c1"),
            ("To", "<sip:user@example.com>"),
            ("Call-ID", "strict-1@example.com"),
            ("CSeq", "10 INVITE"),
            ("Contact", "<sip:caller@192.0.2.1>"),
        ],
    )
    headers = [("Contact", contact)]
    if record_route:
        headers.insert(0, ("Record-Route", record_route))
    return Dialog.uac(invite, build_response(invite, 200, to_tag="u1", headers=headers))


def test_strict_router_example_of_12_2_1_1() -> None:
    # The route set <sip:proxy1>,<sip:proxy2>,<sip:proxy3;lr>,<sip:proxy4> arrives reversed in Record-Route.
    dialog = dialog_with_record_route("<sip:proxy4>, <sip:proxy3;lr>, <sip:proxy2>, <sip:proxy1>")
    assert [str(r.uri) for r in dialog.route_set] == ["sip:proxy1", "sip:proxy2", "sip:proxy3;lr", "sip:proxy4"]
    req = wire_request(dialog.request("INFO", via("caller.example.com")))
    # §12.2.1.1: METHOD sip:proxy1 / Route: <sip:proxy2>,<sip:proxy3;lr>,<sip:proxy4>,<sip:user@remoteua>
    assert str(req.uri) == "sip:proxy1"
    assert [str(r.uri) for r in req.route] == ["sip:proxy2", "sip:proxy3;lr", "sip:proxy4", "sip:user@remoteua"]
    assert req.cseq == (11, "INFO")


def test_strict_router_uri_is_stripped_of_what_a_request_uri_may_not_carry() -> None:
    dialog = dialog_with_record_route("<sip:proxy1;method=INVITE;transport=tcp?Subject=x>")
    req = wire_request(dialog.bye(via("caller.example.com")))
    assert isinstance(req.uri, SipUri)
    assert req.uri.host == "proxy1" and req.uri.headers == () and req.uri.method is None
    assert req.uri.transport == "tcp"
    assert [str(r.uri) for r in req.route] == ["sip:user@remoteua"]


def test_loose_router_keeps_the_remote_target_in_the_request_uri() -> None:
    dialog = dialog_with_record_route("<sip:p2.example.com;lr>, <sip:p1.example.com;lr>")
    req = wire_request(dialog.request("OPTIONS", via("caller.example.com")))
    assert str(req.uri) == "sip:user@remoteua"
    assert [str(r.uri) for r in req.route] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]


def test_no_route_set_no_route_header() -> None:
    dialog = dialog_with_record_route("", contact="<sip:user@remoteua;transport=udp?Subject=hi>")
    req = wire_request(dialog.request("OPTIONS", via("caller.example.com")))
    assert str(req.uri) == "sip:user@remoteua;transport=udp" and "route" not in req


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a.example", "b.example", "10.0.0.1", "proxy"]), st.booleans()), max_size=5),
    st.lists(st.sampled_from(["INFO", "UPDATE", "MESSAGE", "OPTIONS", "NOTIFY"]), min_size=1, max_size=6),
)
def test_any_route_set_and_request_sequence(routes: list[tuple[str, bool]], methods: list[str]) -> None:
    record_route = ", ".join(f"<sip:{host}{';lr' if lr else ''}>" for host, lr in reversed(routes))
    dialog = dialog_with_record_route(record_route)
    seq = dialog.local_seq
    assert seq is not None
    for method in methods:
        body, ctype = (b"hello", "text/plain") if method == "MESSAGE" else (b"", None)
        req = wire_request(dialog.request(method, via("caller.example.com"), body=body, content_type=ctype))
        seq += 1
        assert req.cseq == (seq, method)  # §12.2.1.1: up by exactly one
        assert req.call_id == "strict-1@example.com" and req.from_.tag == "c1" and req.to.tag == "u1"
        hops = [str(r.uri) for r in req.route]
        if not routes:
            assert str(req.uri) == "sip:user@remoteua" and hops == []
        elif routes[0][1]:
            assert str(req.uri) == "sip:user@remoteua" and len(hops) == len(routes)
        else:
            assert str(req.uri) == f"sip:{routes[0][0]}" and hops[-1] == "sip:user@remoteua"
            assert len(hops) == len(routes)
        assert (req.contact != []) == (method in ("UPDATE", "NOTIFY"))


# --- receiving (§12.2.2) ----------------------------------------------------------------------------


def test_out_of_order_cseq_is_refused_with_500() -> None:
    _, _, alice, bob = rfc3665_call()
    first = wire_request(alice.info(via(), b"one", "text/plain"))
    second = wire_request(alice.info(via(), b"two", "text/plain"))
    assert bob.receive_request(second) is ACCEPT and bob.remote_seq == second.cseq.seq
    verdict = bob.receive_request(first)  # arrives late: lower CSeq
    assert verdict == Verdict(False, 500, "Server Internal Error")
    response = verdict.response(first)
    assert response is not None and response.status == 500 and response.reason == "Server Internal Error"
    wire(response)
    assert bob.remote_seq == second.cseq.seq
    assert not bob.terminated


def test_ack_and_cancel_are_exempt_from_the_cseq_order() -> None:
    invite, _, alice, bob = rfc3665_call()
    assert bob.receive_request(wire_request(alice.info(via()))) is ACCEPT
    ack = wire_request(alice.ack(invite, via()))  # CSeq 1, lower than the INFO's 2
    assert bob.receive_request(ack) is ACCEPT and bob.remote_seq == 2


def test_target_refresh_by_a_received_reinvite() -> None:
    _, _, alice, bob = rfc3665_call()
    bob.local_contact = parse_name_addr("<sip:bob@192.0.2.99;transport=tcp>")
    reinvite = wire_request(bob.reinvite(via(), SDP))
    assert reinvite.contact[0].uri == parse_uri("sip:bob@192.0.2.99;transport=tcp")
    assert alice.receive_request(reinvite) is ACCEPT
    assert str(alice.remote_target) == "sip:bob@192.0.2.99;transport=tcp"  # §12.2.2
    alice.responded(reinvite, build_response(reinvite, 200))
    assert str(wire_request(alice.bye(via())).uri) == "sip:bob@192.0.2.99;transport=tcp"


def test_target_refresh_by_a_2xx_to_our_update_only() -> None:
    _, _, alice, _ = rfc3665_call()
    update = wire_request(alice.update(via(), SDP))
    assert update.contact and update.get("Content-Type") == "application/sdp"
    refused = build_response(update, 488, headers=[("Contact", "<sip:elsewhere@192.0.2.7>")])
    alice.receive_response(update, refused)
    assert str(alice.remote_target) == "sip:bob@client.biloxi.example.com;transport=tcp"
    ok = build_response(update, 200, headers=[("Contact", "<sip:bob@192.0.2.8>")])
    alice.receive_response(update, ok)
    assert str(alice.remote_target) == "sip:bob@192.0.2.8"  # §12.2.1.2, RFC 3311 §5.1
    info = wire_request(alice.info(via()))
    alice.receive_response(info, build_response(info, 200, headers=[("Contact", "<sip:nope@192.0.2.9>")]))
    assert str(alice.remote_target) == "sip:bob@192.0.2.8"  # INFO is no target refresh


def test_reinvite_glare_491_and_overlap_500() -> None:
    _, _, alice, bob = rfc3665_call()
    ours = wire_request(alice.reinvite(via(), SDP))
    with pytest.raises(DialogError):
        alice.reinvite(via(), SDP)  # §14.1: one INVITE at a time
    theirs = wire_request(bob.reinvite(via(), SDP))
    assert alice.receive_request(theirs) == Verdict(False, 491, "Request Pending")  # §14.2
    alice.receive_response(ours, build_response(ours, 200))
    assert not alice.invite_pending

    # Bob's re-INVITE, retried, is now accepted; a second one while it is unanswered gets 500
    bob.receive_response(theirs, build_response(theirs, 491))
    again = wire_request(bob.reinvite(via(), SDP))
    assert alice.receive_request(again) is ACCEPT
    overlap = again.copy()
    overlap.set("CSeq", f"{again.cseq.seq + 1} INVITE")
    verdict = alice.receive_request(overlap)
    assert verdict.status == 500 and verdict.headers[0][0] == "Retry-After"
    assert 0 <= int(verdict.headers[0][1]) <= 10
    response = verdict.response(overlap)
    assert response is not None and response.get("Retry-After") == verdict.headers[0][1]
    alice.responded(again, build_response(again, 200))
    assert not alice.invite_pending


def test_481_or_408_ends_the_dialog() -> None:
    for status in (481, 408):
        _, _, alice, _ = rfc3665_call()
        info = wire_request(alice.info(via()))
        alice.receive_response(info, build_response(info, status))
        assert alice.terminated  # §12.2.1.2
        with pytest.raises(DialogError):
            alice.info(via())
    _, _, alice, _ = rfc3665_call()
    alice.request_timed_out(wire_request(alice.request("OPTIONS", via())))
    assert alice.terminated


def test_unknown_dialog_gets_481_and_stray_ack_is_dropped() -> None:
    _, _, alice, bob = rfc3665_call()
    dialogs = DialogSet()
    info = wire_request(alice.info(via()))
    assert dialogs.receive_request(info) == (None, Verdict(False, 481, "Call/Transaction Does Not Exist"))
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    assert dialogs.receive_request(wire_request(alice.ack(invite, via()))) == (None, DROP)
    assert dialogs.receive_request(invite) == (None, ACCEPT)  # no To tag: outside any dialog
    dialogs.add(bob)
    assert dialogs.receive_request(info) == (bob, ACCEPT)
    assert bob in dialogs and bob.id in dialogs and alice not in dialogs
    with pytest.raises(DialogError):
        dialogs.add(bob)


def test_responses_find_their_dialog_by_id() -> None:
    invite, ok, alice, bob = rfc3665_call()
    assert DialogId.of_response(ok) == alice.id == bob.id.reversed()
    assert DialogId.of_request(invite) == DialogId(invite.call_id, "", "9fxced76sl")
    dialogs = DialogSet()
    dialogs.add(alice)
    update = wire_request(alice.update(via(), SDP))
    assert dialogs.receive_response(update, build_response(update, 200)) is alice


# --- forking (§13.2.2.4) ----------------------------------------------------------------------------


def fork_response(invite: Request, status: int, tag: str, host: str) -> Response:
    return build_response(invite, status, to_tag=tag, headers=[("Contact", f"<sip:bob@{host}>")])


def test_forked_2xx_make_two_dialogs_and_the_extra_one_is_acked_and_byed() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    dialogs = DialogSet()
    a_early = dialogs.receive_response(invite, fork_response(invite, 180, "fork-a", "192.0.2.10"))
    c_early = dialogs.receive_response(invite, fork_response(invite, 183, "fork-c", "192.0.2.30"))
    b = dialogs.receive_response(invite, fork_response(invite, 200, "fork-b", "192.0.2.20"))
    a = dialogs.receive_response(invite, fork_response(invite, 200, "fork-a", "192.0.2.10"))
    assert a is not None and a is a_early and b is not None and c_early is not None
    assert {d.remote_tag for d in dialogs.created_by(invite)} == {"fork-a", "fork-b", "fork-c"}
    assert a.state is b.state is DialogState.CONFIRMED and c_early.state is DialogState.EARLY

    assert surplus_dialogs(invite, dialogs) == [a]  # b answered first and is kept
    assert surplus_dialogs(invite, dialogs, keep=a) == [b]

    releases = release_surplus(invite, dialogs, lambda d: via())
    assert [r.dialog for r in releases] == [a]
    ack, bye = wire_request(releases[0].ack), wire_request(releases[0].bye)
    assert str(ack.uri) == str(bye.uri) == "sip:bob@192.0.2.10"
    assert ack.cseq == (1, "ACK") and bye.cseq == (2, "BYE")
    assert ack.to.tag == bye.to.tag == "fork-a"
    assert ack.top_via is not None and bye.top_via is not None and ack.top_via.branch != bye.top_via.branch
    assert a.terminated and b.state is DialogState.CONFIRMED

    # §13.2.2.4: when the INVITE completes, the early dialogs left are ended
    assert dialogs.invite_completed(invite) == [c_early] and c_early.terminated
    assert set(dialogs.prune()) == {a, c_early} and list(dialogs) == [b]


def test_non_2xx_final_ends_every_early_dialog_of_the_invite() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    dialogs = DialogSet()
    one = dialogs.receive_response(invite, fork_response(invite, 180, "one", "192.0.2.1"))
    two = dialogs.receive_response(invite, fork_response(invite, 180, "two", "192.0.2.2"))
    assert dialogs.receive_response(invite, build_response(invite, 486, to_tag="three")) is None
    assert one is not None and two is not None and one.terminated and two.terminated  # §12.3


def test_what_does_not_create_a_dialog() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    dialogs = DialogSet()
    trying = build_response(invite, 100)
    assert trying.to.tag is None and dialogs.receive_response(invite, trying) is None
    subscribe = load_request("rfc3842-4.1-subscribe.sip")
    assert dialogs.receive_response(subscribe, fork_response(subscribe, 180, "x", "192.0.2.1")) is None
    with pytest.raises(DialogError):
        Dialog.uac(invite, build_response(invite, 404, to_tag="x"))
    with pytest.raises(DialogError):
        Dialog.uas(invite, build_response(invite, 200, to_tag="x"))  # our Contact is missing


def test_rfc2543_2xx_without_to_tag_still_makes_a_dialog() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    ok = Response(200, headers=[(name, invite.get(name) or "") for name in ("Via", "From", "To", "Call-ID", "CSeq")])
    ok.add("Contact", "<sip:old@192.0.2.50>")
    dialogs = DialogSet()
    dialog = dialogs.receive_response(invite, ok)
    assert dialog is not None and dialog.remote_tag == "" and dialog.id.remote_tag == ""
    bye = wire_request(dialog.bye(via()))
    assert bye.to.tag is None and str(bye.uri) == "sip:old@192.0.2.50"


# --- building ----------------------------------------------------------------------------------------


def test_ack_carries_the_invite_credentials() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    invite.add("Proxy-Authorization", 'Digest username="alice", realm="atlanta.example.com", response="x"')
    alice = Dialog.uac(invite, load_response("rfc3665-3.1-f3-200.sip"))
    ack = wire_request(alice.ack(invite, via(), body=SDP, content_type="application/sdp"))
    assert ack.get("Proxy-Authorization") == invite.get("Proxy-Authorization")  # §13.2.2.4
    assert ack.body == SDP and ack.content_type == "application/sdp"
    with pytest.raises(DialogError):
        alice.ack(alice.info(via()), via())


def test_other_methods() -> None:
    _, _, alice, bob = rfc3665_call()
    info = wire_request(alice.info(via(), b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay", package="dtmf"))
    assert info.get("Info-Package") == "dtmf" and info.contact == []  # RFC 6086: no target refresh
    message = wire_request(alice.message(via(), b"hi there"))
    assert message.content_type == "text/plain" and message.body == b"hi there"
    notify = wire_request(
        bob.notify(via(), "refer;id=7", "active;expires=60", b"SIP/2.0 100 Trying\r\n", "message/sipfrag")
    )
    assert notify.get("Event") == "refer;id=7" and notify.contact
    subscribe = wire_request(alice.subscribe(via(), "dialog", 600, accept="application/dialog-info+xml"))
    assert subscribe.expires == 600 and subscribe.get("Accept") == "application/dialog-info+xml"
    seqs = [req.cseq.seq for req in (info, message, subscribe)]
    assert seqs == [2, 3, 4]
    with pytest.raises(DialogError):
        alice.request("MESSAGE", via(), body=b"no type")  # §7.4.1
    with pytest.raises(DialogError):
        alice.request("ACK", via())
    with pytest.raises(DialogError):
        alice.request("CANCEL", via())


def test_bye_may_be_rebuilt_after_a_challenge_but_nothing_else() -> None:
    _, _, alice, _ = rfc3665_call()
    first = wire_request(alice.bye(via()))
    assert alice.terminated
    retry = wire_request(alice.bye(via(), headers=[("Proxy-Authorization", 'Digest username="alice"')]))
    assert retry.cseq.seq == first.cseq.seq + 1
    with pytest.raises(DialogError):
        alice.info(via())


def test_early_dialog_rules() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    alice = Dialog.uac(invite, load_response("rfc3665-3.1-f2-180.sip"))
    with pytest.raises(DialogError):
        alice.reinvite(via(), SDP)  # §14.1: a confirmed dialog only
    update = wire_request(alice.update(via(), SDP))  # RFC 3311: fine in an early dialog
    assert update.cseq == (2, "UPDATE")
    cancel_instead = wire_request(alice.bye(via()))  # §15: the caller may BYE an early dialog
    assert cancel_instead.method == "BYE" and alice.terminated


def test_refer_with_replaces_for_attended_transfer() -> None:
    _, _, alice, _ = rfc3665_call()
    # Alice also talks to Carol; she asks Bob to call Carol, replacing that call.
    alice_carol = DialogId("carol-call@atlanta.example.com", "alice-tag", "carol-tag")
    refer = wire_request(
        alice.refer(
            via(),
            "sip:carol@chicago.example.com",
            replaces=alice_carol,
            referred_by="<sip:alice@atlanta.example.com>",
        )
    )
    assert refer.contact and refer.get("Referred-By") == "<sip:alice@atlanta.example.com>"
    target = parse_name_addr(refer.get("Refer-To") or "")
    assert isinstance(target.uri, SipUri)
    assert "Replaces=carol-call%40atlanta.example.com%3Bto-tag%3Dcarol-tag%3Bfrom-tag%3Dalice-tag" in str(target.uri)
    (name, value), *_ = target.uri.headers
    assert name == "Replaces" and value == replaces_value(alice_carol)
    # Carol, receiving Bob's INVITE with that Replaces, finds her own dialog (RFC 3891 §3)
    assert parse_replaces(value) == alice_carol.reversed()
    plain = wire_request(alice.refer(via(), parse_uri("sip:dave@example.com"), subscription=False))
    assert plain.get("Refer-To") == "<sip:dave@example.com>" and plain.get("Refer-Sub") == "false"
    with pytest.raises(DialogError):
        parse_replaces("callid;to-tag=a")


def test_secure_flag() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    invite.uri = "sips:bob@biloxi.example.com"
    invite.pop_via()
    invite.add("Via", "SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bKs1", first=True)
    ok = load_response("rfc3665-3.1-f3-200.sip")
    assert Dialog.uac(invite, ok).secure  # §12.1.2: SIPS Request-URI, sent over TLS
    assert not Dialog.uac(invite, ok, tls=False).secure
    assert not Dialog.uac(load_request("rfc3665-3.1-f1-invite.sip"), ok).secure


def test_states_move_only_by_the_table() -> None:
    _, _, alice, _ = rfc3665_call()
    assert (DialogState.TERMINATED, DialogState.CONFIRMED) not in TRANSITIONS
    with pytest.raises(IllegalTransition):
        alice._move(DialogState.EARLY)
    alice.terminate()
    alice.terminate()  # idempotent
    with pytest.raises(IllegalTransition):
        alice._move(DialogState.CONFIRMED)
    assert alice.receive_request(load_request("24.2-f13-bye.sip")).status == 481  # terminated: §12.2.2


# --- CANCEL (§9.1) ------------------------------------------------------------------------------------


def test_cancel_copies_the_invite() -> None:
    invite = load_request("24.2-f1-invite.sip")
    cancel = wire_request(build_cancel(invite))
    assert str(cancel.uri) == "sip:bob@biloxi.com"
    assert cancel.get_all("Via") == ["SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"]
    for name in ("From", "To", "Call-ID"):
        assert cancel.get(name) == invite.get(name)
    assert cancel.cseq == (314159, "CANCEL") and cancel.body == b""


def test_cancel_keeps_route_and_only_the_top_via_and_matches_the_server_transaction() -> None:
    invite = load_request("24.2-f3-invite.sip")  # two Via values
    invite.add("Route", "<sip:p1.example.com;lr>")
    cancel = wire_request(build_cancel(invite))
    assert [v.branch for v in cancel.vias] == ["z9hG4bK77ef4c2312983.1"]
    assert cancel.get_all("Route") == ["<sip:p1.example.com;lr>"]
    # the server transaction layer finds the INVITE the CANCEL names (§9.2)
    layer = TransactionLayer(Timers(), ack_builder=ack_for_non_2xx)
    source = Target("UDP", "192.0.2.2", 5060)
    layer.receive(invite, source, 0.0)
    txn = layer.find_server(cancel)
    assert txn is not None and txn.request is invite and txn.state is ISState.PROCEEDING
    with pytest.raises(DialogError):
        build_cancel(load_request("24.2-f13-bye.sip"))
