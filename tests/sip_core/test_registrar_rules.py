"""RFC 3261 §10.3 registrar rules, sans-I/O: bindings in, outcome out, on a virtual clock."""

from __future__ import annotations

import pytest

from voxswitch.sip.message import Request
from voxswitch.sip.registrar import Binding, RegistrarError, RegistrarPolicy, process_register


def register(*contacts: str, cseq: int = 1, call_id: str = "reg-1", expires: int | None = None) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKabc"),
        ("Max-Forwards", "70"),
        ("From", "<sip:1001@example.com>;tag=f"),
        ("To", "<sip:1001@example.com>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
        *[("Contact", c) for c in contacts],
    ]
    if expires is not None:
        headers.append(("Expires", str(expires)))
    headers.append(("Content-Length", "0"))
    return Request("REGISTER", "sip:example.com", headers)


def apply(req: Request, bindings: list[Binding], now: float, **kw: object):  # type: ignore[no-untyped-def]
    return process_register(req, bindings, now, source_host="192.0.2.5", source_port=5060, transport="UDP", **kw)


def test_several_contacts_per_aor_ordered_by_q_and_fetch() -> None:
    out = apply(register("<sip:a@192.0.2.5>;q=0.5", "<sip:b@192.0.2.6>;q=0.9;expires=120"), [], now=1000.0)
    assert [b.contact for b in out.keep] == ["sip:b@192.0.2.6", "sip:a@192.0.2.5"]
    assert [c.expires for c in out.response.contact] == [120, 3600]
    # §10.2.3: a REGISTER without Contact fetches the bindings and changes nothing
    fetched = apply(register(cseq=2), out.keep, now=1010.0)
    assert fetched.upserts == [] and fetched.removals == []
    assert [c.expires for c in fetched.response.contact] == [110, 3590]


def test_expires_header_applies_and_zero_removes_one_binding() -> None:
    out = apply(register("<sip:a@192.0.2.5>", "<sip:b@192.0.2.6>", expires=300), [], now=0.0)
    assert all(b.expires_at == 300.0 for b in out.keep)
    removed = apply(register("<sip:a@192.0.2.5>;expires=0", cseq=2), out.keep, now=10.0)
    assert removed.removals == ["sip:a@192.0.2.5"] and [b.contact for b in removed.keep] == ["sip:b@192.0.2.6"]


def test_expiry_is_clamped_and_too_brief_is_423() -> None:
    policy = RegistrarPolicy(min_expires=60, max_expires=600)
    out = apply(register("<sip:a@192.0.2.5>", expires=100000), [], now=0.0, policy=policy)
    assert out.keep[0].expires_at == 600.0
    with pytest.raises(RegistrarError) as err:
        apply(register("<sip:a@192.0.2.5>", expires=10), [], now=0.0, policy=policy)
    assert err.value.status == 423 and ("Min-Expires", "60") in err.value.headers


def test_out_of_order_cseq_on_the_same_call_id_is_refused() -> None:
    out = apply(register("<sip:a@192.0.2.5>", cseq=5), [], now=0.0)
    with pytest.raises(RegistrarError) as err:
        apply(register("<sip:a@192.0.2.5>", cseq=4), out.keep, now=1.0)
    assert err.value.status == 500
    # another Call-ID (e.g. the phone rebooted) replaces the binding whatever its CSeq
    fresh = apply(register("<sip:a@192.0.2.5>", cseq=1, call_id="reg-2"), out.keep, now=2.0)
    assert fresh.keep[0].call_id == "reg-2"


def test_wildcard_removes_everything_and_expired_bindings_vanish() -> None:
    out = apply(register("<sip:a@192.0.2.5>", "<sip:b@192.0.2.6>;expires=100"), [], now=0.0)
    later = apply(register(cseq=2), out.keep, now=150.0)
    assert [b.contact for b in later.keep] == ["sip:a@192.0.2.5"]  # b expired at 100
    gone = apply(register("*", cseq=3, expires=0), out.keep, now=160.0)
    assert gone.keep == [] and set(gone.removals) == {"sip:a@192.0.2.5"}


def test_too_many_contacts_is_refused() -> None:
    contacts = [f"<sip:c{i}@192.0.2.5>" for i in range(4)]
    with pytest.raises(RegistrarError) as err:
        apply(register(*contacts), [], now=0.0, policy=RegistrarPolicy(max_contacts=3))
    assert err.value.status == 403
