"""RFC 6665 subscriptions on a virtual clock: the RFC 3842 MWI exchange, the RFC 3515 REFER flow,
refresh, unsubscribe, fetch, expiry, 489/423/406/481, NOTIFY failures, and the two body formats.
Every request and response built here goes through parse_message + validate."""

from __future__ import annotations

import pytest

from tests.sip_dialog.support import load_request, load_response, via, wire, wire_request
from voxswitch.sip.dialog import ACCEPT, Dialog, DialogSet, DialogState, IllegalTransition, Verdict
from voxswitch.sip.errors import SipParseError
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.subscription import (
    MESSAGE_SUMMARY_TYPE,
    SIPFRAG_TYPE,
    TRANSITIONS,
    ClientSubscription,
    Event,
    MessageCounts,
    Notifier,
    SubscriptionError,
    SubscriptionStatus,
    SubState,
    _check,
    message_summary,
    parse_event,
    parse_message_summary,
    parse_sipfrag,
    parse_subscription_state,
    sipfrag,
)
from voxswitch.sip.uri import parse_uri

RFC3842_BODY = b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\nVoice-Message: 2/8 (0/2)\r\n"


def vmail() -> Notifier:
    return Notifier("<sip:alice@vmail.example.com>", lambda dialog: via("vmail.example.com"))


def phone(expires: int = 3600, **kwargs: object) -> ClientSubscription:
    """Alice's phone subscribing to her mailbox, as in RFC 3842 §4.1, built by the subscriber side."""
    return ClientSubscription.new(
        "message-summary",
        "sip:alice@vmail.example.com",
        via("alicepc.example.com"),
        local="<sip:alice@example.com>",
        contact="<sip:alice@alicepc.example.com>",
        expires=expires,
        accept=MESSAGE_SUMMARY_TYPE,
        **kwargs,  # type: ignore[arg-type]
    )


def subscribe(event: str = "message-summary", expires: str | None = "3600", **extra: str) -> Request:
    req = load_request("rfc3842-4.1-subscribe.sip").copy()
    req.set("Event", event)
    if expires is None:
        req.remove("Expires")
    else:
        req.set("Expires", expires)
    for name, value in extra.items():
        req.set(name.replace("_", "-"), value)
    return req


# --- RFC 3842 §4.1 ----------------------------------------------------------------------------------


def test_rfc3842_notifier_answers_the_subscribe_and_notifies() -> None:
    request = load_request("rfc3842-4.1-subscribe.sip")
    notifier = vmail()
    result = notifier.receive_subscribe(request, 0.0, to_tag="4442")
    response = result.response
    assert result.accepted and response.status == 200 and result.notify_now and result.notifies == []
    wire(response)
    assert response.expires == 3600 and response.to.tag == "4442"  # §4.2.1.1: Expires in the 2xx
    assert str(response.contact[0].uri) == "sip:alice@vmail.example.com"
    sub = result.subscription
    assert sub is not None and sub.state is SubState.ACTIVE and sub.owns_dialog
    assert str(sub.resource) == "sip:alice@vmail.example.com" and sub.event == Event("message-summary")
    assert notifier.next_deadline() == 3600.0

    body = message_summary(account="sip:alice@vmail.example.com", voice=MessageCounts(2, 8, 0, 2))
    notify = wire_request(notifier.notify(sub, 0.0, body))
    sample = load_request("rfc3842-4.1-notify.sip")
    assert notify.body == sample.body == RFC3842_BODY
    assert str(notify.uri) == str(sample.uri) == "sip:alice@alicepc.example.com"
    for name in ("To", "From", "Call-ID", "Event", "Content-Type"):
        assert notify.get(name) == sample.get(name), name
    assert notify.get("Subscription-State") == "active;expires=3600"
    assert notify.contact and notify.cseq.method == "NOTIFY"


def test_rfc3842_subscriber_takes_the_notify_before_the_200() -> None:
    request = load_request("rfc3842-4.1-subscribe.sip")
    client = ClientSubscription(event=parse_event("message-summary"), request=request)
    sample = load_request("rfc3842-4.1-notify.sip")
    verdict = client.receive_notify(sample, 0.5)  # §4.1.2.4: the NOTIFY may come first
    assert verdict is ACCEPT and verdict.response(sample) is None
    assert client.state is SubState.ACTIVE and client.dialog is not None and client.owns_dialog
    assert client.dialog.id == ("1349882@alicepc.example.com", "78923", "4442")
    assert str(client.dialog.remote_target) == "sip:alice@vmail.example.com"
    assert client.expires_at is None  # "active" without expires: wait for the 2xx
    summary = parse_message_summary(client.last_notify.body if client.last_notify else b"")
    assert summary.waiting and summary.account == "sip:alice@vmail.example.com"
    assert summary.counts == {"voice": MessageCounts(2, 8, 0, 2)}

    ok = vmail().receive_subscribe(request, 0.0, to_tag="4442").response
    client.receive_response(request, ok, 1.0)
    assert client.granted == 3600 and client.expires_at == 3601.0
    assert client.refresh_at == 3601.0 - 32  # refresh_margin: a timed-out refresh still fits
    assert client.next_deadline() == client.refresh_at


def test_mwi_subscription_lives_refreshes_and_expires_on_a_virtual_clock() -> None:
    notifier = vmail()
    client = phone()
    first = wire_request(client.request)
    assert first.get("Event") == "message-summary" and first.expires == 3600 and first.to.tag is None

    result = notifier.receive_subscribe(first, 0.0)
    client.receive_response(first, result.response, 0.0)
    sub = result.subscription
    assert sub is not None and client.dialog is not None and client.dialog.id == sub.dialog.id.reversed()
    one = message_summary(account="sip:alice@vmail.example.com", voice=MessageCounts(1, 0))
    assert client.receive_notify(wire_request(notifier.notify(sub, 0.0, one)), 0.0) is ACCEPT
    assert client.state is SubState.ACTIVE and client.expires_at == 3600.0

    # the phone refreshes 32 s before expiry; the notifier re-arms and sends the state again
    assert client.refresh_at == 3568.0
    refresh = wire_request(client.refresh(via("alicepc.example.com")))
    assert refresh.to.tag == sub.dialog.local_tag and refresh.cseq.seq == first.cseq.seq + 1
    again = notifier.receive_subscribe(refresh, 3568.0)
    assert again.subscription is sub and again.notify_now and again.response.expires == 3600
    client.receive_response(refresh, again.response, 3568.0)
    assert notifier.next_deadline() == 7168.0 and client.expires_at == 7168.0
    update = wire_request(notifier.notify(sub, 3568.0, one))
    assert update.get("Subscription-State") == "active;expires=3600"
    assert client.receive_notify(update, 3568.0) is ACCEPT

    # the mailbox changes half way: a NOTIFY with what is left of the subscription
    two = message_summary(account="sip:alice@vmail.example.com", voice=MessageCounts(2, 0, 1, 0))
    change = wire_request(notifier.notify(sub, 5000.5, two))
    assert change.get("Subscription-State") == "active;expires=2167"
    assert client.receive_notify(change, 5000.5) is ACCEPT and client.expires_at == 7167.5

    # the phone goes quiet: nothing before the deadline, then the final NOTIFY
    assert notifier.expire(7167.0) == []
    (final,) = notifier.expire(7168.0)
    wire_request(final)
    assert final.get("Subscription-State") == "terminated;reason=timeout"
    assert final.body == two  # the last state, once more
    assert sub.state is SubState.TERMINATED and notifier.subscriptions == {}
    assert sub.dialog.terminated and sub.dialog not in notifier.dialogs
    assert notifier.next_deadline() is None and notifier.expire(10_000.0) == []
    with pytest.raises(SubscriptionError):
        notifier.notify(sub, 7168.0, one)

    assert client.receive_notify(final, 7168.0) is ACCEPT
    assert client.terminated and client.reason == "timeout" and client.retry_at == 7168.0  # §4.1.3: at once
    assert client.dialog.terminated and client.refresh_at is None and client.next_deadline() is None


def test_unsubscribe_gets_a_final_notify() -> None:
    notifier = vmail()
    client = phone()
    result = notifier.receive_subscribe(client.request, 0.0)
    client.receive_response(client.request, result.response, 0.0)
    assert result.subscription is not None
    wire_request(notifier.notify(result.subscription, 0.0, message_summary(voice=MessageCounts(0, 3))))
    bye = wire_request(client.unsubscribe(via("alicepc.example.com")))
    assert bye.expires == 0 and client.refresh_at is None and not client.terminated
    gone = notifier.receive_subscribe(bye, 100.0)
    assert gone.response.status == 200 and gone.response.expires == 0 and not gone.notify_now
    (final,) = gone.notifies
    wire_request(final)
    assert final.get("Subscription-State") == "terminated;reason=timeout"  # §4.1.2.3
    assert parse_message_summary(final.body).counts["voice"] == MessageCounts(0, 3)
    client.receive_response(bye, gone.response, 100.0)
    assert client.receive_notify(final, 100.0) is ACCEPT and client.terminated
    assert notifier.subscriptions == {} and len(notifier.dialogs) == 0


def test_fetch_is_a_subscription_with_one_terminated_notify() -> None:
    notifier = vmail()
    result = notifier.receive_subscribe(subscribe(expires="0"), 0.0)
    assert result.response.status == 200 and result.response.expires == 0 and result.notify_now
    assert result.subscription is not None
    notify = wire_request(notifier.notify(result.subscription, 0.0, message_summary(voice=MessageCounts(0, 0))))
    assert notify.get("Subscription-State") == "terminated;reason=timeout"  # §4.4.3
    assert notify.body.startswith(b"Messages-Waiting: no\r\n") and notifier.subscriptions == {}


# --- refusals ---------------------------------------------------------------------------------------


def test_unknown_event_package_gets_489_with_allow_events() -> None:
    notifier = vmail()
    result = notifier.receive_subscribe(subscribe("dialog"), 0.0)
    assert not result.accepted and result.subscription is None
    response = wire(result.response)
    assert isinstance(response, Response)
    assert response.status == 489 and response.reason == "Bad Event"
    assert response.get_list("Allow-Events") == ["message-summary", "refer", "presence"]
    assert len(notifier.dialogs) == 0


def test_expiry_bounds() -> None:
    notifier = vmail()
    brief = notifier.receive_subscribe(subscribe(expires="10"), 0.0).response
    wire(brief)
    assert brief.status == 423 and brief.get("Min-Expires") == "60"  # §4.2.1.1
    long = notifier.receive_subscribe(subscribe(expires="999999"), 0.0)
    assert long.response.expires == 86400  # shortened, never lengthened
    default = notifier.receive_subscribe(subscribe(expires=None), 0.0)
    assert default.response.expires == 3600  # RFC 3842 §3.4


def test_missing_event_and_unacceptable_body_type() -> None:
    notifier = vmail()
    no_event = subscribe()
    no_event.remove("Event")
    assert notifier.receive_subscribe(no_event, 0.0).response.status == 400
    assert notifier.receive_subscribe(subscribe(Accept="application/pidf+xml"), 0.0).response.status == 406
    assert notifier.receive_subscribe(subscribe(Accept="application/*"), 0.0).accepted
    bad = subscribe()
    bad.set("Event", ";id=1")
    assert notifier.receive_subscribe(bad, 0.0).response.status == 400
    no_contact = subscribe()
    no_contact.remove("Contact")
    assert notifier.receive_subscribe(no_contact, 0.0).response.status == 400


def test_in_dialog_subscribe_for_no_subscription_gets_481_and_stale_cseq_500() -> None:
    dialogs = DialogSet()
    notifier = Notifier("<sip:pbx@192.0.2.5>", lambda d: via("192.0.2.5"), dialogs=dialogs)
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    ok = load_response("rfc3665-3.1-f3-200.sip")
    alice = Dialog.uac(invite, ok)
    dialogs.add(Dialog.uas(invite, ok, first_seq=1))
    result = notifier.receive_subscribe(wire_request(alice.subscribe(via(), "message-summary", 600)), 0.0)
    assert result.response.status == 481  # new subscriptions start outside dialogs

    client = phone()
    started = notifier.receive_subscribe(client.request, 0.0)
    client.receive_response(client.request, started.response, 0.0)
    early = wire_request(client.refresh(via()))
    late = wire_request(client.refresh(via()))
    assert notifier.receive_subscribe(late, 10.0).accepted
    stale = notifier.receive_subscribe(early, 11.0)
    assert stale.response.status == 500  # RFC 3261 §12.2.2


def test_pending_subscription_is_activated_later() -> None:
    notifier = vmail()
    result = notifier.receive_subscribe(subscribe("presence", Accept="application/pidf+xml"), 0.0, pending=True)
    sub = result.subscription
    assert sub is not None and sub.state is SubState.PENDING
    waiting = wire_request(notifier.notify(sub, 0.0))
    assert waiting.get("Subscription-State") == "pending;expires=3600" and waiting.body == b""
    assert "content-type" not in waiting
    pidf = b'<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>'
    granted = wire_request(notifier.activate(sub, 60.0, pidf))
    assert granted.get("Subscription-State") == "active;expires=3540"
    assert granted.content_type == "application/pidf+xml" and sub.state is SubState.ACTIVE
    ended = wire_request(notifier.terminate(sub, 70.0, "rejected", retry_after=600))
    assert ended.get("Subscription-State") == "terminated;reason=rejected;retry-after=600"


def test_notify_failures_end_the_subscription() -> None:
    def started() -> tuple[Notifier, Request]:
        notifier = vmail()
        result = notifier.receive_subscribe(subscribe(), 0.0)
        assert result.subscription is not None
        return notifier, wire_request(notifier.notify(result.subscription, 0.0, message_summary()))

    notifier, notify = started()
    assert notifier.receive_notify_response(notify, build_response(notify, 200)) is None
    busy = build_response(notify, 503, headers=[("Retry-After", "30")])
    assert notifier.receive_notify_response(notify, busy) is None and len(notifier.subscriptions) == 1
    assert notifier.receive_notify_response(notify, build_response(notify, 407)) is None
    gone = notifier.receive_notify_response(notify, build_response(notify, 481))  # §4.2.2: MUST remove
    assert gone is not None and gone.terminated and gone.reason == "rejected"
    assert notifier.subscriptions == {} and len(notifier.dialogs) == 0 and notifier.next_deadline() is None

    notifier, notify = started()
    assert notifier.receive_notify_response(notify, build_response(notify, 500)) is not None
    notifier, notify = started()
    timed_out = notifier.notify_timed_out(notify)
    assert timed_out is not None and timed_out.reason == "timeout" and notifier.subscriptions == {}
    assert notifier.notify_timed_out(notify) is None


# --- REFER (RFC 3515) ------------------------------------------------------------------------------


def test_rfc3515_refer_notifier_side() -> None:
    refer = load_request("rfc3515-4.1-f1-refer.sip")
    notifier = Notifier("sip:b@atlanta.example.com", lambda d: via("agentb.atlanta.example.com"))
    result = notifier.receive_refer(refer, 0.0, to_tag="4992881234")
    accepted = wire(result.response)
    assert isinstance(accepted, Response)
    assert accepted.status == 202 and accepted.reason == "Accepted" and result.notify_now  # §2.4.2
    assert accepted.to.tag == "4992881234" and accepted.contact
    sub = result.subscription
    assert sub is not None and sub.event == Event("refer", "93809823")  # §2.4.6: id = the REFER's CSeq
    assert sub.refer_to is not None and str(sub.refer_to.uri) == "sip:c@atlanta.example.com"

    trying = wire_request(notifier.refer_progress(sub, 0.0, 100))
    f3 = load_request("rfc3515-4.1-f3-notify.sip")
    assert trying.body == f3.body == b"SIP/2.0 100 Trying\r\n" and trying.content_length == 20
    assert str(trying.uri) == str(f3.uri) == "sip:a@atlanta.example.com"
    for name in ("To", "From", "Call-ID", "Content-Type"):
        assert trying.get(name) == f3.get(name), name
    assert trying.get("Event") == "refer;id=93809823"
    assert trying.get("Subscription-State") == "active;expires=300"

    done = wire_request(notifier.refer_progress(sub, 2.0, 200))
    f5 = load_request("rfc3515-4.1-f5-notify.sip")
    assert done.body == f5.body == b"SIP/2.0 200 OK\r\n"
    assert done.get("Subscription-State") == f5.get("Subscription-State") == "terminated;reason=noresource"
    assert done.cseq.seq == trying.cseq.seq + 1
    assert sub.terminated and sub.dialog.terminated and len(notifier.dialogs) == 0


def test_rfc3515_refer_referrer_side() -> None:
    refer = load_request("rfc3515-4.1-f1-refer.sip")
    client = ClientSubscription.for_refer(refer)
    f3 = load_request("rfc3515-4.1-f3-notify.sip")
    assert client.matches(f3)  # the first REFER's NOTIFYs may leave the id out (§2.4.6)
    assert client.receive_notify(f3, 0.2) is ACCEPT  # before the 202: the NOTIFY makes the dialog
    assert client.dialog is not None and client.dialog.remote_tag == "4992881234"
    assert client.state is SubState.ACTIVE and client.expires_at == pytest.approx(60.2)
    assert parse_sipfrag(client.last_notify.body if client.last_notify else b"") == (100, "Trying")

    accepted = build_response(
        refer, 202, "Accepted", to_tag="4992881234", headers=[("Contact", "sip:b@atlanta.example.com")]
    )
    client.receive_response(refer, accepted, 0.3)
    assert client.state is SubState.ACTIVE

    f5 = load_request("rfc3515-4.1-f5-notify.sip")
    assert client.receive_notify(f5, 5.0) is ACCEPT
    assert parse_sipfrag(f5.body) == (200, "OK")
    assert client.terminated and client.reason == "noresource" and client.retry_at is None
    assert client.dialog.terminated
    again = client.receive_notify(f5, 5.1)
    assert again.status == 481


def test_refer_in_a_call_shares_the_invite_dialog() -> None:
    invite = load_request("rfc3665-3.1-f1-invite.sip")
    ok = load_response("rfc3665-3.1-f3-200.sip")
    alice = Dialog.uac(invite, ok)
    bob_dialogs = DialogSet()
    bob = bob_dialogs.add(Dialog.uas(invite, ok, first_seq=1))
    notifier = Notifier("<sip:bob@client.biloxi.example.com;transport=tcp>", lambda d: via(), dialogs=bob_dialogs)

    refer = wire_request(alice.refer(via(), "sip:carol@chicago.example.com"))
    transfer = ClientSubscription.for_refer(refer, alice)
    result = notifier.receive_refer(refer, 0.0)
    assert result.response.status == 202 and result.response.to.tag == bob.local_tag
    sub = result.subscription
    assert sub is not None and sub.dialog is bob and not sub.owns_dialog
    transfer.receive_response(refer, result.response, 0.0)

    second = wire_request(alice.refer(via(), "sip:dave@chicago.example.com"))
    other = notifier.receive_refer(second, 1.0).subscription
    assert other is not None and other.event.id == str(second.cseq.seq) and len(notifier.subscriptions) == 2

    for status, at in ((100, 1.0), (180, 2.0), (200, 3.0)):
        notify = wire_request(notifier.refer_progress(sub, at, status))
        assert transfer.matches(notify)
        assert transfer.receive_notify(notify, at) is ACCEPT
    assert transfer.terminated and parse_sipfrag(transfer.last_notify.body if transfer.last_notify else b"")[0] == 200
    # the call goes on: the subscription was a usage of the INVITE dialog, not its owner
    assert bob.state is DialogState.CONFIRMED and bob in bob_dialogs and alice.state is DialogState.CONFIRMED
    assert list(notifier.subscriptions.values()) == [other]


def test_refer_refusals_and_refer_sub_false() -> None:
    notifier = vmail()
    refer = load_request("rfc3515-4.1-f1-refer.sip")
    none = refer.copy()
    none.remove("Refer-To")
    assert notifier.receive_refer(none, 0.0).response.reason == "Bad Request - Missing Refer-To"
    two = refer.copy()
    two.add("Refer-To", "<sip:d@atlanta.example.com>")
    assert notifier.receive_refer(two, 0.0).response.status == 400  # §2.4.1: exactly one
    quiet = refer.copy()
    quiet.add("Refer-Sub", "false")
    result = notifier.receive_refer(quiet, 0.0)
    wire(result.response)
    assert result.response.status == 202 and result.response.get("Refer-Sub") == "false"  # RFC 4488 §4
    assert result.subscription is None and not result.notify_now and len(notifier.dialogs) == 0
    with pytest.raises(SubscriptionError):
        notifier.receive_refer(subscribe(), 0.0)
    with pytest.raises(SubscriptionError):
        notifier.receive_subscribe(refer, 0.0)


# --- the subscriber side ------------------------------------------------------------------------------


def test_client_subscribe_request() -> None:
    client = phone(route=["<sip:outbound.example.com;lr>"], call_id="c1@alicepc", tag="t1", cseq=7)
    req = wire_request(client.request)
    assert str(req.uri) == "sip:alice@vmail.example.com" and req.call_id == "c1@alicepc"
    assert str(req.from_) == "<sip:alice@example.com>;tag=t1" and str(req.to) == "<sip:alice@vmail.example.com>"
    assert req.cseq == (7, "SUBSCRIBE") and req.get("Accept") == MESSAGE_SUMMARY_TYPE
    assert [str(r.uri) for r in req.route] == ["sip:outbound.example.com;lr"]
    assert client.state is SubState.INIT and client.refresh_at is None and client.next_deadline() is None


def test_client_failures() -> None:
    notifier = vmail()
    client = phone(expires=10)
    refused = notifier.receive_subscribe(client.request, 0.0).response
    client.receive_response(client.request, refused, 0.0)
    assert client.terminated and client.failure == 423 and client.min_expires == 60 and client.retry_at is None

    client = phone()
    ok = notifier.receive_subscribe(client.request, 0.0).response
    client.receive_response(client.request, ok, 0.0)
    refresh = wire_request(client.refresh(via()))
    client.receive_response(refresh, build_response(refresh, 500), 3568.0)
    assert not client.terminated and client.expires_at == 3600.0  # §4.1.2.2: valid until its expiry
    assert client.expire(3599.0) is False and client.expire(3600.0) is True
    assert client.terminated and client.reason == "timeout"
    with pytest.raises(SubscriptionError):
        client.refresh(via())

    client = phone()
    ok = notifier.receive_subscribe(client.request, 0.0).response
    client.receive_response(client.request, ok, 0.0)
    refresh = wire_request(client.refresh(via()))
    client.receive_response(refresh, build_response(refresh, 481), 10.0)
    assert client.terminated and client.failure == 481 and client.dialog is not None and client.dialog.terminated


def test_client_refuses_strange_notifies() -> None:
    notifier = vmail()
    client = phone()
    result = notifier.receive_subscribe(client.request, 0.0)
    client.receive_response(client.request, result.response, 0.0)
    assert result.subscription is not None
    notify = wire_request(notifier.notify(result.subscription, 0.0, message_summary()))
    # from a second fork of the SUBSCRIBE: another From tag, no dialog of ours (§4.1.4)
    fork = notify.copy()
    fork.set("From", "<sip:alice@example.com>;tag=other-fork")
    assert client.receive_notify(fork, 0.0) == Verdict(False, 481, "Subscription Does Not Exist")
    wrong_event = notify.copy()
    wrong_event.set("Event", "presence")
    assert client.receive_notify(wrong_event, 0.0).status == 481
    no_state = notify.copy()
    no_state.remove("Subscription-State")
    assert client.receive_notify(no_state, 0.0).status == 400
    garbled = notify.copy()
    garbled.set("Subscription-State", "active;expires=soon")
    assert client.receive_notify(garbled, 0.0).status == 400
    assert client.receive_notify(notify, 0.0) is ACCEPT
    extension = wire_request(notifier.notify(result.subscription, 1.0, message_summary()))
    extension.set("Subscription-State", "frozen;expires=100")
    assert client.receive_notify(extension, 1.0) is ACCEPT and client.state is SubState.ACTIVE
    stale = notify.copy()  # an old NOTIFY again, CSeq below the last
    assert client.receive_notify(stale, 1.0).status == 500


@pytest.mark.parametrize(
    ("state", "retry"),
    [
        ("terminated;reason=probation;retry-after=30", 130.0),
        ("terminated;reason=giveup", 100.0),
        ("terminated;reason=deactivated", 100.0),
        ("terminated", 100.0),
        ("terminated;reason=rejected", None),
        ("terminated;reason=noresource;retry-after=5", None),
        ("terminated;reason=invariant", None),
    ],
)
def test_retry_after_termination(state: str, retry: float | None) -> None:
    notifier = vmail()
    client = phone()
    result = notifier.receive_subscribe(client.request, 0.0)
    client.receive_response(client.request, result.response, 0.0)
    assert result.subscription is not None
    final = wire_request(notifier.terminate(result.subscription, 100.0))
    final.set("Subscription-State", state)
    assert client.receive_notify(final, 100.0) is ACCEPT
    assert client.terminated and client.retry_at == retry  # §4.1.3


# --- headers, machine and bodies ----------------------------------------------------------------------


def test_event_and_subscription_state_headers() -> None:
    event = parse_event("refer;id=93809823;foo=bar")
    assert event.package == "refer" and event.id == "93809823" and str(event) == "refer;id=93809823;foo=bar"
    assert event.matches(Event("refer", "93809823")) and not event.matches(Event("refer"))
    assert parse_event("presence.winfo").package == "presence.winfo"
    status = parse_subscription_state("Terminated ; reason=Probation ; retry-after=30")
    assert status == SubscriptionStatus("terminated", None, "probation", 30)
    assert str(status) == "terminated;reason=probation;retry-after=30"
    assert parse_subscription_state("active;expires=60") == SubscriptionStatus("active", 60)
    with pytest.raises(SipParseError):
        parse_subscription_state("active;expires=-1")
    with pytest.raises(SipParseError):
        parse_event("")


def test_the_machine_is_a_table() -> None:
    assert (SubState.TERMINATED, SubState.ACTIVE) not in TRANSITIONS
    assert (SubState.PENDING, SubState.INIT) not in TRANSITIONS
    with pytest.raises(IllegalTransition):
        _check(SubState.TERMINATED, SubState.ACTIVE, "test")
    _check(SubState.INIT, SubState.ACTIVE, "test")


def test_message_summary_body() -> None:
    body = message_summary(account="sip:alice@vmail.example.com", voice=MessageCounts(2, 8, 0, 2))
    assert body == RFC3842_BODY  # RFC 3842 §4.1
    assert message_summary() == b"Messages-Waiting: no\r\n"
    assert message_summary(voice=MessageCounts(0, 4), fax=MessageCounts(1, 0)) == (
        b"Messages-Waiting: yes\r\nVoice-Message: 0/4\r\nFax-Message: 1/0\r\n"
    )
    assert message_summary(waiting=False, voice=MessageCounts(1, 0)).startswith(b"Messages-Waiting: no")
    with pytest.raises(ValueError):
        message_summary(voice=MessageCounts(-1, 0))

    parsed = parse_message_summary(
        b"Messages-Waiting: yes\r\nVoice-Message: 4/8 (1/2)\r\nfax-message: 2/1\r\n\r\n"
        b"To: <alice@atlanta.example.com>\r\nSubject: hello\r\n"
    )
    assert parsed.waiting and parsed.account is None
    assert parsed.counts == {"voice": MessageCounts(4, 8, 1, 2), "fax": MessageCounts(2, 1)}
    for bad in (
        b"Voice-Message: 1/2\r\n",
        b"Messages-Waiting: maybe\r\n",
        b"Messages-Waiting: yes\r\nVoice-Message: x\r\n",
    ):
        with pytest.raises(SipParseError):
            parse_message_summary(bad)


def test_sipfrag_body() -> None:
    assert sipfrag(200) == b"SIP/2.0 200 OK\r\n"
    assert sipfrag(100) == b"SIP/2.0 100 Trying\r\n" and len(sipfrag(100)) == 20  # RFC 3515 §4.1 F3
    assert sipfrag(503, "Service Unavailable") == b"SIP/2.0 503 Service Unavailable\r\n"
    assert parse_sipfrag(b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP x\r\n") == (486, "Busy Here")
    assert SIPFRAG_TYPE.startswith("message/sipfrag")
    with pytest.raises(ValueError):
        sipfrag(99)
    with pytest.raises(SipParseError):
        parse_sipfrag(b"INVITE sip:x@y SIP/2.0\r\n")


def test_uri_of_the_subscription_is_kept() -> None:
    notifier = vmail()
    request = subscribe()
    request.uri = parse_uri("sip:1000@pbx.example.com")
    result = notifier.receive_subscribe(request, 0.0)
    assert result.subscription is not None and str(result.subscription.resource) == "sip:1000@pbx.example.com"
    assert str(result.subscription.subscriber.uri) == "sip:alice@example.com"
