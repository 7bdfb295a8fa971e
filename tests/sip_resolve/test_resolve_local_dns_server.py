"""RFC 3263 resolution against a local test DNS server that speaks real DNS on 127.0.0.1 (tests/support/dns_server).

Every test gets its own server on a free UDP port and counts the questions it was asked, which shows both
what was resolved and what was (not) looked up. No real DNS server is ever queried.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.rcode
import pytest

from tests.support.dns_server import LocalDnsServer, records_from_master_file
from voxswitch.sip.resolve import ResolvedTarget, ResolveError, Resolver

RFC3263_EXAMPLE = records_from_master_file(Path(__file__).with_name("rfc3263_example.zone"))


@pytest.fixture
async def local_dns() -> AsyncIterator[LocalDnsServer]:
    async with LocalDnsServer({}) as server:
        yield server


def resolver_for(server: LocalDnsServer, **options: Any) -> Resolver:
    options.setdefault("rng", random.Random(3263))
    options.setdefault("timeout", 1.0)
    return Resolver([server.host], server.port, **options)


def hosts(targets: list[ResolvedTarget]) -> list[tuple[str, str, int]]:
    return [(t.transport, t.host, t.port) for t in targets]


# -- numeric hosts: RFC 3263 §4.1 second paragraph, §4.2 first paragraph: no DNS at all -----------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:alice@192.0.2.10", ("UDP", "192.0.2.10", 5060)),
        ("sip:alice@192.0.2.10:5080", ("UDP", "192.0.2.10", 5080)),
        ("sips:alice@192.0.2.10", ("TLS", "192.0.2.10", 5061)),
        ("sip:[2001:DB8::10]", ("UDP", "2001:db8::10", 5060)),
        ("sips:bob@[2001:db8::10]:6061;lr", ("TLS", "2001:db8::10", 6061)),
        ("sip:192.0.2.10;transport=TCP", ("TCP", "192.0.2.10", 5060)),
        ("sip:192.0.2.10;transport=tls", ("TLS", "192.0.2.10", 5061)),
        ("sips:192.0.2.10;transport=tcp", ("TLS", "192.0.2.10", 5061)),
        ("SIP:user;x=1@192.0.2.10?Subject=hi", ("UDP", "192.0.2.10", 5060)),
        ("sip:carol@example.com;maddr=192.0.2.77", ("UDP", "192.0.2.77", 5060)),
    ],
)
async def test_numeric_host_is_used_without_asking_the_local_dns_server(
    local_dns: LocalDnsServer, uri: str, expected: tuple[str, str, int]
) -> None:
    assert hosts(await resolver_for(local_dns).resolve(uri)) == [expected]
    assert local_dns.queries == []


async def test_default_transport_replaces_udp_for_a_large_request(local_dns: LocalDnsServer) -> None:
    resolver = resolver_for(local_dns)
    assert hosts(await resolver.resolve("sip:192.0.2.10", default_transport="TCP")) == [("TCP", "192.0.2.10", 5060)]
    # A transport parameter still wins, and sips: stays TLS.
    assert hosts(await resolver.resolve("sip:192.0.2.10;transport=udp", default_transport="TCP"))[0][0] == "UDP"
    assert hosts(await resolver.resolve("sips:192.0.2.10", default_transport="TCP"))[0][0] == "TLS"


async def test_sip_uri_object_with_scheme_host_port_params_is_accepted(local_dns: LocalDnsServer) -> None:
    @dataclass
    class Uri:
        scheme: str
        host: str
        port: int | None
        params: dict[str, str | None] = field(default_factory=dict)

    resolver = resolver_for(local_dns)
    targets = await resolver.resolve(Uri("sips", "[2001:db8::1]", None, {"Transport": "TCP", "lr": None}))
    assert hosts(targets) == [("TLS", "2001:db8::1", 5061)]


async def test_uri_parsed_by_voxswitch_sip_uri_is_accepted(local_dns: LocalDnsServer) -> None:
    from voxswitch.sip.uri import parse_uri

    uri = parse_uri("sips:bob@[2001:DB8::1];Transport=TCP;lr")
    assert hosts(await resolver_for(local_dns).resolve(uri)) == [("TLS", "2001:db8::1", 5061)]
    uri = parse_uri("sip:bob@example.com:5080;maddr=192.0.2.3;transport=tcp")
    assert hosts(await resolver_for(local_dns).resolve(uri)) == [("TCP", "192.0.2.3", 5080)]
    assert local_dns.queries == []


@pytest.mark.parametrize(
    "uri", ["tel:+15551234", "sip:", "sip:alice@", "sip:host:0", "sip:host:70000", "sip:host:x", "sip:::1"]
)
async def test_not_a_sip_uri_is_a_value_error(local_dns: LocalDnsServer, uri: str) -> None:
    with pytest.raises(ValueError):
        await resolver_for(local_dns).resolve(uri)


@pytest.mark.parametrize(
    ("uri", "options", "reason"),
    [
        ("sips:192.0.2.1;transport=udp", {}, "no TLS over UDP"),
        ("sip:192.0.2.1;transport=sctp", {}, "transport=sctp is not supported"),
        ("sip:192.0.2.1;transport=tcp", {"supported": ("UDP",)}, "transport TCP is not supported"),
        ("sips:example.com", {"supported": ("UDP", "TCP")}, "needs TLS"),
    ],
)
async def test_transport_we_cannot_use_is_a_resolve_error(
    local_dns: LocalDnsServer, uri: str, options: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ResolveError, match=reason):
        await resolver_for(local_dns, **options).resolve(uri)
    assert local_dns.queries == []


# -- explicit port or transport: §4.1 second paragraph, §4.2 second and third paragraphs ---------------------


async def test_explicit_port_skips_naptr_and_srv_and_looks_up_a_and_aaaa(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "example.com": ['NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp.example.com'],
            "_sip._tcp.example.com": ["SRV 0 0 5060 elsewhere.example.com"],
            "pbx.example.com": ["A 192.0.2.5", "AAAA 2001:db8::5"],
        }
    )
    targets = await resolver_for(local_dns).resolve("sip:alice@pbx.example.com:5070")
    assert hosts(targets) == [("UDP", "192.0.2.5", 5070), ("UDP", "2001:db8::5", 5070)]
    assert Counter(t for _, t in local_dns.queries) == {"A": 1, "AAAA": 1}


async def test_ip_versions_choose_and_order_the_address_families(local_dns: LocalDnsServer) -> None:
    local_dns.load({"pbx.example.com": ["A 192.0.2.5", "AAAA 2001:db8::5"]})
    v6_first = await resolver_for(local_dns, ip_versions=(6, 4)).resolve("sip:pbx.example.com:5060")
    assert [t.host for t in v6_first] == ["2001:db8::5", "192.0.2.5"]
    v4_only = await resolver_for(local_dns, ip_versions=(4,)).resolve("sips:pbx.example.com:5061")
    assert hosts(v4_only) == [("TLS", "192.0.2.5", 5061)]


async def test_transport_parameter_queries_only_that_transports_srv(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "example.com": ['NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.example.com'],
            "_sip._tcp.example.com": ["SRV 0 0 5070 tcp.example.com"],
            "tcp.example.com": ["A 192.0.2.6"],
        }
    )
    targets = await resolver_for(local_dns).resolve("sip:example.com;transport=tcp")
    assert hosts(targets) == [("TCP", "192.0.2.6", 5070)]
    assert local_dns.count(rdtype="NAPTR") == 0
    assert local_dns.count(rdtype="SRV") == 1


async def test_transport_parameter_without_srv_uses_the_domains_address_at_the_default_port(
    local_dns: LocalDnsServer,
) -> None:
    local_dns.load({"example.com": ["A 192.0.2.7"]})
    assert hosts(await resolver_for(local_dns).resolve("sip:example.com;transport=tls")) == [("TLS", "192.0.2.7", 5061)]
    assert local_dns.count("_sips._tcp.example.com", "SRV") == 1


# -- NAPTR, SRV, A: §4.1 and §4.2 ---------------------------------------------------------------------------


async def test_rfc3263_example_zone_client_supporting_tcp_and_udp_uses_tcp_first(local_dns: LocalDnsServer) -> None:
    """§4.1: "Since the client supports TCP and UDP, TCP will be used", through _sip._tcp.example.com."""
    local_dns.load(RFC3263_EXAMPLE)
    targets = await resolver_for(local_dns, supported=("UDP", "TCP")).resolve("sip:user@example.com")
    assert [t.transport for t in targets] == ["TCP"] * 3 + ["UDP"] * 3
    assert {t.host for t in targets[:3]} == {"192.0.2.1", "192.0.2.2", "2001:db8::2"}
    assert {(t.priority, t.weight, t.port) for t in targets if t.host == "192.0.2.1"} == {(0, 1, 5060)}
    assert local_dns.count("_sips._tcp.example.com") == 0


async def test_rfc3263_example_zone_client_supporting_tls_prefers_sips_d2t(local_dns: LocalDnsServer) -> None:
    local_dns.load(RFC3263_EXAMPLE)
    targets = await resolver_for(local_dns).resolve("sip:user@example.com")
    assert [t.transport for t in targets] == ["TLS"] * 3 + ["TCP"] * 3 + ["UDP"] * 3
    assert {t.port for t in targets[:3]} == {5061}


async def test_rfc3263_example_zone_sips_uri_keeps_only_sips_services(local_dns: LocalDnsServer) -> None:
    local_dns.load(RFC3263_EXAMPLE)
    targets = await resolver_for(local_dns).resolve("sips:user@example.com")
    assert {t.transport for t in targets} == {"TLS"}
    assert len(targets) == 3
    assert local_dns.count(rdtype="SRV") == 1


async def test_rfc3263_example_zone_weighted_choice_follows_the_srv_weights(local_dns: LocalDnsServer) -> None:
    """server2 has weight 2 and server1 weight 1: server2 comes first about 2 times in 3. The draw is redone on
    every resolution, while the DNS answers come from the cache."""
    local_dns.load(RFC3263_EXAMPLE)
    resolver = resolver_for(local_dns, supported=("TCP",), ip_versions=(4,), rng=random.Random(2782))
    firsts = Counter([(await resolver.resolve("sip:example.com"))[0].host for _ in range(1500)])
    assert 0.61 < firsts["192.0.2.2"] / 1500 < 0.72
    assert len(local_dns.queries) == 4  # NAPTR, SRV and two A, once


async def test_naptr_chain_follows_the_replacement_into_another_domain(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "example.com": [
                'NAPTR 20 10 "s" "SIP+D2U" "" _sip._udp.school.edu',
                'NAPTR 10 20 "s" "SIP+D2T" "" _sip._tcp.school.edu',
                'NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp.first.school.edu',
            ],
            "_sip._tcp.first.school.edu": ["SRV 0 0 5062 a.school.edu"],
            "_sip._tcp.school.edu": ["SRV 0 0 5063 b.school.edu"],
            "_sip._udp.school.edu": ["SRV 0 0 5064 b.school.edu"],
            "a.school.edu": ["A 198.51.100.1"],
            "b.school.edu": ["A 198.51.100.2"],
        }
    )
    targets = await resolver_for(local_dns).resolve("sip:example.com")
    # order 10 before 20; within order 10, preference 10 before 20
    assert hosts(targets) == [
        ("TCP", "198.51.100.1", 5062),
        ("TCP", "198.51.100.2", 5063),
        ("UDP", "198.51.100.2", 5064),
    ]


async def test_naptr_records_that_are_not_usable_are_discarded(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "example.com": [
                'NAPTR 10 10 "a" "SIP+D2T" "" tcp-a.example.com',  # flag "a": not ours
                'NAPTR 20 10 "s" "SIP+D2S" "" _sip._sctp.example.com',  # SCTP: not supported
                'NAPTR 30 10 "s" "SIPS+D2T" "" _sips._tcp.example.com',  # TLS: not supported by this client
                'NAPTR 40 10 "s" "SIP+D2U" "" _sip._udp.example.com',
            ],
            "_sips._tcp.example.com": ["SRV 0 0 5061 tls.example.com"],
            "_sip._udp.example.com": ["SRV 0 0 5060 udp.example.com"],
            "udp.example.com": ["A 192.0.2.8"],
        }
    )
    targets = await resolver_for(local_dns, supported=("UDP", "TCP")).resolve("sip:example.com")
    assert hosts(targets) == [("UDP", "192.0.2.8", 5060)]
    assert local_dns.count("_sips._tcp.example.com") == 0


async def test_naptr_without_srv_at_its_replacement_falls_back_to_the_domains_address(
    local_dns: LocalDnsServer,
) -> None:
    """§4.2: no SRV records, so the A/AAAA records of the domain, at the default port of that transport."""
    local_dns.load({"example.com": ['NAPTR 10 10 "s" "SIPS+D2T" "" _sips._tcp.example.com', "A 192.0.2.9"]})
    assert hosts(await resolver_for(local_dns).resolve("sip:example.com")) == [("TLS", "192.0.2.9", 5061)]


async def test_domain_offering_only_sip_services_we_lack_is_an_error_not_a_guess(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "example.com": ['NAPTR 10 10 "s" "SIPS+D2T" "" _sips._tcp.example.com', "A 192.0.2.9"],
            "_sip._udp.example.com": ["SRV 0 0 5060 old.example.com"],
        }
    )
    with pytest.raises(ResolveError, match=re.escape("example.com: offers only SIP services we cannot use: SIPS+D2T")):
        await resolver_for(local_dns, supported=("UDP",)).resolve("sip:example.com")


async def test_naptr_for_other_applications_only_is_as_if_there_were_none(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "example.com": ['NAPTR 10 10 "s" "x-eduroam:radius.tls" "" _radsec._tcp.example.com'],
            "_sip._udp.example.com": ["SRV 0 0 5060 sip.example.com"],
            "sip.example.com": ["A 192.0.2.11"],
        }
    )
    assert hosts(await resolver_for(local_dns).resolve("sip:example.com")) == [("UDP", "192.0.2.11", 5060)]


# -- no NAPTR: SRV per transport (§4.1 last paragraphs), then A/AAAA ------------------------------------------


async def test_srv_only_domain_uses_the_transports_that_answer(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "example.com": ["A 192.0.2.99"],
            "_sip._tcp.example.com": ["SRV 10 0 5060 b.example.com", "SRV 5 0 5060 a.example.com"],
            "_sips._tcp.example.com": ["SRV 0 0 5061 a.example.com"],
            "a.example.com": ["A 192.0.2.21"],
            "b.example.com": ["A 192.0.2.22"],
        }
    )
    targets = await resolver_for(local_dns).resolve("sip:example.com")
    # our order of preference (UDP, TCP, TLS) among those offered; SRV priority within each
    assert hosts(targets) == [("TCP", "192.0.2.21", 5060), ("TCP", "192.0.2.22", 5060), ("TLS", "192.0.2.21", 5061)]
    assert {name for name, qtype in local_dns.queries if qtype == "SRV"} == {
        "_sip._udp.example.com",
        "_sip._tcp.example.com",
        "_sips._tcp.example.com",
    }
    # default_transport (a request too large for UDP) goes first where the client chooses
    tls_first = await resolver_for(local_dns).resolve("sip:example.com", default_transport="TLS")
    assert tls_first[0].transport == "TLS"


async def test_srv_priority_orders_the_targets(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "_sip._udp.example.com": [
                "SRV 30 10 5060 c.example.com",
                "SRV 10 10 5060 a.example.com",
                "SRV 20 10 5060 b.example.com",
            ],
            "a.example.com": ["A 192.0.2.31"],
            "b.example.com": ["A 192.0.2.32"],
            "c.example.com": ["A 192.0.2.33"],
        }
    )
    targets = await resolver_for(local_dns, supported=("UDP",)).resolve("sip:example.com")
    assert [(t.host, t.priority) for t in targets] == [("192.0.2.31", 10), ("192.0.2.32", 20), ("192.0.2.33", 30)]


async def test_srv_target_dot_means_not_available_and_does_not_fall_back(local_dns: LocalDnsServer) -> None:
    local_dns.load({"example.com": ["A 192.0.2.99"], "_sip._udp.example.com": ["SRV 0 0 0 ."]})
    with pytest.raises(ResolveError, match=re.escape("example.com: no SIP server found")):
        await resolver_for(local_dns, supported=("UDP",)).resolve("sip:example.com")


async def test_a_only_domain_gets_udp_for_sip_and_tls_for_sips_at_default_ports(local_dns: LocalDnsServer) -> None:
    local_dns.load({"example.com": ["A 192.0.2.41", "AAAA 2001:db8::41"]})
    resolver = resolver_for(local_dns)
    assert hosts(await resolver.resolve("sip:bob@example.com")) == [
        ("UDP", "192.0.2.41", 5060),
        ("UDP", "2001:db8::41", 5060),
    ]
    assert hosts(await resolver.resolve("sips:bob@example.com")) == [
        ("TLS", "192.0.2.41", 5061),
        ("TLS", "2001:db8::41", 5061),
    ]


async def test_a_only_domain_without_udp_support_uses_our_first_transport(local_dns: LocalDnsServer) -> None:
    local_dns.load({"example.com": ["A 192.0.2.41"]})
    targets = await resolver_for(local_dns, supported=("TCP", "TLS")).resolve("sip:example.com")
    assert hosts(targets) == [("TCP", "192.0.2.41", 5060)]


# -- errors ----------------------------------------------------------------------------------------------------


async def test_nxdomain_is_a_resolve_error_naming_the_domain(local_dns: LocalDnsServer) -> None:
    local_dns.load({"example.com": ["A 192.0.2.1"]})
    with pytest.raises(ResolveError) as caught:
        await resolver_for(local_dns).resolve("sip:alice@nowhere.example.net")
    assert str(caught.value) == "nowhere.example.net: no SIP server found in DNS"
    assert caught.value.domain == "nowhere.example.net"
    with pytest.raises(ResolveError, match=re.escape("nowhere.example.net")):
        await resolver_for(local_dns).resolve("sip:nowhere.example.net:5060")


async def test_servfail_on_naptr_stops_instead_of_falling_back(local_dns: LocalDnsServer) -> None:
    local_dns.load({"example.com": ["A 192.0.2.1"]})
    local_dns.rcodes[("example.com", "NAPTR")] = dns.rcode.SERVFAIL
    with pytest.raises(ResolveError, match=re.escape("example.com: NAPTR lookup of example.com failed")) as caught:
        await resolver_for(local_dns).resolve("sip:example.com")
    assert caught.value.domain == "example.com"
    assert local_dns.count(rdtype="A") == 0


async def test_failed_srv_query_prevents_the_address_fallback(local_dns: LocalDnsServer) -> None:
    local_dns.load({"example.com": ["A 192.0.2.1"]})
    local_dns.rcodes[("_sip._tcp.example.com", "SRV")] = dns.rcode.REFUSED
    with pytest.raises(ResolveError, match=re.escape("SRV lookup of _sip._tcp.example.com failed")):
        await resolver_for(local_dns).resolve("sip:example.com")


async def test_failure_in_one_branch_is_skipped_when_another_gives_targets(local_dns: LocalDnsServer) -> None:
    local_dns.load(
        {
            "_sip._udp.example.com": ["SRV 0 0 5060 a.example.com"],
            "_sip._tcp.example.com": ["SRV 0 0 5060 a.example.com"],
            "a.example.com": ["A 192.0.2.51", "AAAA 2001:db8::51"],
        }
    )
    local_dns.rcodes[("a.example.com", "AAAA")] = dns.rcode.SERVFAIL  # a middlebox that mishandles AAAA
    local_dns.rcodes[("_sips._tcp.example.com", "SRV")] = dns.rcode.SERVFAIL
    targets = await resolver_for(local_dns).resolve("sip:example.com")
    assert hosts(targets) == [("UDP", "192.0.2.51", 5060), ("TCP", "192.0.2.51", 5060)]


async def test_silent_server_times_out_into_a_resolve_error(local_dns: LocalDnsServer) -> None:
    local_dns.silent.add(("example.com", "NAPTR"))
    with pytest.raises(ResolveError, match=re.escape("example.com: NAPTR lookup of example.com timed out")):
        await resolver_for(local_dns, timeout=0.2).resolve("sip:example.com")


# -- caching ---------------------------------------------------------------------------------------------------


async def test_second_resolution_is_answered_from_the_cache(local_dns: LocalDnsServer) -> None:
    local_dns.load(RFC3263_EXAMPLE)
    resolver = resolver_for(local_dns)
    first = await resolver.resolve("sip:user@example.com")
    asked = len(local_dns.queries)
    assert asked == 1 + 3 + 2 + 2  # NAPTR, three SRV, A and AAAA of two servers
    again = await resolver.resolve("sip:other@example.com")
    assert len(local_dns.queries) == asked
    assert set(again) == set(first)


async def test_negative_answers_are_cached_for_the_soa_minimum(local_dns: LocalDnsServer) -> None:
    now = [1000.0]
    local_dns.load({"example.com": ["30 A 192.0.2.61"]})  # the server's negative TTL is 60 s
    resolver = resolver_for(local_dns, clock=lambda: now[0])
    await resolver.resolve("sip:example.com")
    asked = len(local_dns.queries)  # NAPTR, three SRV, A, AAAA (empty)
    now[0] += 29
    await resolver.resolve("sip:example.com")
    assert len(local_dns.queries) == asked
    now[0] += 2  # the A record has expired, the negative answers have not
    await resolver.resolve("sip:example.com")
    assert local_dns.queries[asked:] == [("example.com", "A")]
    now[0] += 29  # 60 s after the first answers: the negative ones have expired, the refreshed A has not
    await resolver.resolve("sip:example.com")
    negatives = [q for q in local_dns.queries[:asked] if q[1] != "A"]
    assert sorted(local_dns.queries[asked + 1 :]) == sorted(negatives)


async def test_expired_record_is_asked_again_and_the_new_answer_used(local_dns: LocalDnsServer) -> None:
    now = [0.0]
    local_dns.load({"pbx.example.com": ["5 A 192.0.2.71"]})
    resolver = resolver_for(local_dns, clock=lambda: now[0], ip_versions=(4,))
    assert (await resolver.resolve("sip:pbx.example.com:5060"))[0].host == "192.0.2.71"
    local_dns.load({"pbx.example.com": ["5 A 192.0.2.72"]})
    now[0] = 4.9
    assert (await resolver.resolve("sip:pbx.example.com:5060"))[0].host == "192.0.2.71"
    now[0] = 5.0
    assert (await resolver.resolve("sip:pbx.example.com:5060"))[0].host == "192.0.2.72"
    assert local_dns.count("pbx.example.com", "A") == 2


async def test_without_cache_every_resolution_asks_again(local_dns: LocalDnsServer) -> None:
    local_dns.load({"pbx.example.com": ["A 192.0.2.81"]})
    resolver = resolver_for(local_dns, cache=False, ip_versions=(4,))
    for _ in range(3):
        await resolver.resolve("sip:pbx.example.com:5060")
    assert local_dns.count("pbx.example.com", "A") == 3


async def test_concurrent_resolutions_share_one_query_per_record(local_dns: LocalDnsServer) -> None:
    local_dns.load(RFC3263_EXAMPLE)
    resolver = resolver_for(local_dns)
    results = await asyncio.gather(*(resolver.resolve("sip:example.com") for _ in range(10)))
    assert all(len(r) == 9 for r in results)
    assert local_dns.count("example.com", "NAPTR") == 1
    assert len(local_dns.queries) == len(set(local_dns.queries))
