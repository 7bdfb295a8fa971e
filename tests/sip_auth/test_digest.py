"""Digest authentication: RFC 2617/7616 vectors, the server's nonce rules, client selection, fuzzing."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxswitch.sip.digest import (
    HA1,
    Algorithm,
    AuthOutcome,
    AuthResult,
    Challenge,
    Credentials,
    DigestClient,
    DigestError,
    DigestServer,
    Password,
    SecretLookup,
    UnsupportedAlgorithm,
    answer_challenge,
    compute_ha1,
    select_challenge,
)

# --------------------------------------------------------------------------- published vectors

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_section_3_5_example() -> None:
    header = answer_challenge(
        RFC2617_CHALLENGE, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b"
    )
    creds = Credentials.parse(header)
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert creds == Credentials.parse(RFC2617_AUTHORIZATION)


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, response: str) -> None:
    ch = Challenge.parse(rfc7616_challenge(algorithm))
    assert ch.qop == ("auth", "auth-int")
    assert ch.algorithm == Algorithm.parse(algorithm)
    header = answer_challenge(ch, "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce=RFC7616_CNONCE, nc=1)
    creds = Credentials.parse(header)
    assert creds.response == response
    assert (creds.nc, creds.qop, creds.cnonce, creds.opaque) == (
        "00000001",
        "auth",
        RFC7616_CNONCE,
        RFC7616_OPAQUE,
    )
    # RFC 7616 §3.4: algorithm, qop and nc go unquoted.
    assert f"algorithm={algorithm}" in header and "qop=auth," in header and "nc=00000001" in header


def test_rfc7616_authorization_header_parses() -> None:
    value = (
        'Digest username="Mufasa",\t realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm=SHA-256, nonce="{RFC7616_NONCE}", nc=00000001, cnonce="{RFC7616_CNONCE}", '
        'qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        f'opaque="{RFC7616_OPAQUE}"'
    )
    creds = Credentials.parse(value)
    assert creds.algorithm is Algorithm.SHA256
    assert Credentials.parse(str(creds)) == creds


# --------------------------------------------------------------------------- parsing and serialising


def test_parse_is_tolerant_of_case_whitespace_and_empty_elements() -> None:
    ch = Challenge.parse('  digest  REALM = "a" ,, nonce=abc/def== , Algorithm=sha-256-SESS, stale=TRUE ')
    assert (ch.realm, ch.nonce, ch.algorithm, ch.stale) == ("a", "abc/def==", Algorithm.SHA256_SESS, True)
    assert ch.qop == ()


def test_quoted_string_escapes_round_trip() -> None:
    creds = Credentials(username='bo"b\\', realm="r, =x", nonce="n", uri="sip:b@x;transport=tcp", response="ab")
    text = str(creds)
    assert r'username="bo\"b\\"' in text
    assert Credentials.parse(text) == creds


def test_challenge_serialises_qop_quoted_and_stale_unquoted() -> None:
    text = str(Challenge(realm="x", nonce="n", algorithm=Algorithm.SHA256, qop=("auth",), stale=True))
    assert text == 'Digest realm="x", nonce="n", stale=true, algorithm=SHA-256, qop="auth"'
    assert Challenge.parse(text).stale


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Digest",
        "Basic realm=x",
        "Digestrealm=x",
        'Digest realm="x", nonce="n',
        'Digest realm="x" nonce="n"',
        'Digest realm="x", realm="y", nonce="n"',
        'Digest realm="x", nonce=',
        'Digest realm="x", =n',
        'Digest realm="x\\',
        'Digest realm="x\r\nVia: evil", nonce="n"',
        'Digest nonce="n"',
    ],
)
def test_malformed_challenges(value: str) -> None:
    with pytest.raises(DigestError):
        Challenge.parse(value)


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="a", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="a", realm="r", nonce="n", uri="u", response="zz"',  # not hex
        'Digest username="a", realm="r", nonce="n", uri="u", response="ab", qop=auth',  # no nc/cnonce
        'Digest username="a", realm="r", nonce="n", uri="u", response="ab", qop=auth, nc=1, cnonce="c"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="ab", algorithm=SHA-512-256',
    ],
)
def test_malformed_credentials(value: str) -> None:
    with pytest.raises(DigestError):
        Credentials.parse(value)


def test_unknown_algorithm_is_its_own_error() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-512-256')


def test_serialising_refuses_header_injection() -> None:
    with pytest.raises(DigestError):
        str(Credentials(username="a\r\nX: y", realm="r", nonce="n", uri="u", response="ab"))


# --------------------------------------------------------------------------- server

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "biloxi.com"
URI = "sip:biloxi.com"
USERS = {"bob": "zanzibar", "alice": "wonderland"}


def lookup_password(username: str, realm: str, algorithm: Algorithm) -> Password | HA1 | None:
    password = USERS.get(username)
    return None if password is None else Password(password)


def lookup_ha1(username: str, realm: str, algorithm: Algorithm) -> Password | HA1 | None:
    password = USERS.get(username)
    return None if password is None else HA1(compute_ha1(username, realm, password, algorithm))


def counter_entropy() -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def make_server(**kwargs: Any) -> DigestServer:
    """Deterministic entropy keeps failures reproducible."""
    return DigestServer(REALM, SECRET, entropy=counter_entropy(), **kwargs)


def register(server: DigestServer, now: float, *, username: str = "bob", password: str = "zanzibar") -> str:
    return answer_challenge(server.challenge(now), "REGISTER", URI, username, password, cnonce="0a4f113b")


def test_server_offers_one_challenge_per_algorithm_strongest_first() -> None:
    challenges = [Challenge.parse(v) for v in make_server().challenge(100.0)]
    assert [c.algorithm for c in challenges] == [Algorithm.SHA256, Algorithm.MD5]
    assert {c.realm for c in challenges} == {REALM}
    assert all(c.qop == ("auth",) and not c.stale for c in challenges)


@pytest.mark.parametrize("lookup", [lookup_password, lookup_ha1])
@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_sip_register_round_trip(lookup: SecretLookup, algorithm: Algorithm) -> None:
    server = make_server(algorithms=[algorithm])
    header = register(server, 1000.0)
    assert f"algorithm={algorithm.value}" in header
    result = server.verify("REGISTER", header, lookup, 1010.0)
    assert result == AuthResult(AuthOutcome.OK, "bob")
    assert result.ok


def test_method_and_uri_are_covered_by_the_digest() -> None:
    server = make_server()
    header = register(server, 1000.0)
    assert server.verify("INVITE", header, lookup_password, 1001.0).outcome is AuthOutcome.INVALID


def test_request_uri_check_is_opt_in() -> None:
    server = make_server()
    creds = Credentials.parse(register(server, 1000.0))
    assert server.verify("REGISTER", creds, lookup_password, 1001.0, request_uri="sip:evil.com").outcome is (
        AuthOutcome.INVALID
    )
    assert server.verify("REGISTER", creds, lookup_password, 1001.0, request_uri=URI).ok


def test_stale_nonce_with_right_password_asks_for_a_silent_retry() -> None:
    server = make_server(nonce_lifetime=300.0)
    header = register(server, 1000.0)
    assert server.verify("REGISTER", header, lookup_password, 1301.0).outcome is AuthOutcome.STALE
    retry = server.challenge(1301.0, stale=True)
    assert all(Challenge.parse(v).stale for v in retry)
    fresh = answer_challenge(retry, "REGISTER", URI, "bob", "zanzibar", cnonce="c2")
    assert server.verify("REGISTER", fresh, lookup_password, 1302.0).ok


def test_stale_nonce_with_wrong_password_is_invalid() -> None:
    server = make_server()
    header = register(server, 1000.0, password="guess")
    assert server.verify("REGISTER", header, lookup_password, 5000.0).outcome is AuthOutcome.INVALID


def test_forged_nonces_are_invalid() -> None:
    server = make_server()
    genuine = Challenge.parse(server.challenge(1000.0)[0]).nonce
    flipped = genuine[:10] + ("A" if genuine[10] != "A" else "B") + genuine[11:]
    other_secret = DigestServer(REALM, b"x" * 32).make_nonce(1000.0)
    other_realm = DigestServer("atlanta.com", SECRET).make_nonce(1000.0)
    for nonce in (flipped, other_secret, other_realm, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "!!", "é"):
        ch = Challenge(realm=REALM, nonce=nonce, algorithm=Algorithm.SHA256, qop=("auth",))
        header = answer_challenge(ch, "REGISTER", URI, "bob", "zanzibar", cnonce="c")
        assert server.verify("REGISTER", header, lookup_password, 1001.0).outcome is AuthOutcome.INVALID


def test_replayed_nonce_count_is_refused() -> None:
    server = make_server()
    challenges = server.challenge(1000.0)
    first = answer_challenge(challenges, "REGISTER", URI, "bob", "zanzibar", cnonce="c", nc=1)
    assert server.verify("REGISTER", first, lookup_password, 1001.0).ok
    assert server.verify("REGISTER", first, lookup_password, 1002.0).outcome is AuthOutcome.STALE
    third = answer_challenge(challenges, "REGISTER", URI, "bob", "zanzibar", cnonce="c", nc=3)
    assert server.verify("REGISTER", third, lookup_password, 1003.0).ok
    second = answer_challenge(challenges, "REGISTER", URI, "bob", "zanzibar", cnonce="c", nc=2)
    assert server.verify("REGISTER", second, lookup_password, 1004.0).outcome is AuthOutcome.STALE


def test_forgotten_nonces_cannot_be_replayed() -> None:
    server = make_server(max_tracked_nonces=2)
    headers = [register(server, 1000.0 + i) for i in range(3)]
    for i, header in enumerate(headers):
        assert server.verify("REGISTER", header, lookup_password, 1010.0 + i).ok
    # The first nonce was evicted to make room; replaying it must still fail.
    assert server.verify("REGISTER", headers[0], lookup_password, 1020.0).outcome is AuthOutcome.STALE
    assert server.verify("REGISTER", headers[2], lookup_password, 1021.0).outcome is AuthOutcome.STALE


def test_unknown_user_and_wrong_password_are_indistinguishable() -> None:
    server = make_server()
    wrong_password = register(server, 1000.0, password="nope")
    unknown_user = register(server, 1000.0, username="mallory", password="nope")
    for lookup in (lookup_password, lookup_ha1):
        a = server.verify("REGISTER", wrong_password, lookup, 1001.0)
        b = server.verify("REGISTER", unknown_user, lookup, 1001.0)
        assert a == b == AuthResult(AuthOutcome.INVALID, None)


def test_wrong_realm_unoffered_algorithm_and_qop_are_invalid() -> None:
    server = make_server(algorithms=[Algorithm.SHA256])
    nonce = server.make_nonce(1000.0)
    cases = [
        Challenge(realm="atlanta.com", nonce=nonce, algorithm=Algorithm.SHA256, qop=("auth",)),
        Challenge(realm=REALM, nonce=nonce, algorithm=Algorithm.MD5, qop=("auth",)),
        Challenge(realm=REALM, nonce=nonce, algorithm=Algorithm.SHA256, qop=("auth-int",)),
    ]
    for ch in cases:
        header = answer_challenge(ch, "REGISTER", URI, "bob", "zanzibar", cnonce="c")
        assert server.verify("REGISTER", header, lookup_password, 1001.0).outcome is AuthOutcome.INVALID


def test_rfc2069_clients_are_refused_unless_allowed() -> None:
    strict, lenient = make_server(), make_server(allow_rfc2069=True)
    for server, expected in ((strict, AuthOutcome.INVALID), (lenient, AuthOutcome.OK)):
        nonce = server.make_nonce(1000.0)
        ch = Challenge(realm=REALM, nonce=nonce, algorithm=Algorithm.MD5)  # no qop: RFC 2069 style
        header = answer_challenge(ch, "REGISTER", URI, "bob", "zanzibar", cnonce="ignored")
        assert "qop" not in header and "cnonce" not in header
        assert server.verify("REGISTER", header, lookup_password, 1001.0).outcome is expected
    # Without nc there is nothing to count: an RFC 2069 nonce is good for one request.
    assert lenient.verify("REGISTER", header, lookup_password, 1002.0).outcome is AuthOutcome.STALE


def test_auth_int_covers_the_body() -> None:
    server = make_server(allow_auth_int=True)
    nonce = server.make_nonce(1000.0)
    ch = Challenge(realm=REALM, nonce=nonce, algorithm=Algorithm.SHA256, qop=("auth-int",))
    body = b"v=0\r\n"
    header = answer_challenge(ch, "INVITE", URI, "bob", "zanzibar", cnonce="c", body=body)
    assert server.verify("INVITE", header, lookup_password, 1001.0, body=b"v=1\r\n").outcome is (AuthOutcome.INVALID)
    assert server.verify("INVITE", header, lookup_password, 1001.0, body=body).ok


def test_malformed_credentials_are_reported_as_such() -> None:
    server = make_server()
    for value in ("Digest", "Basic Zm9vOmJhcg==", 'Digest username="bob"'):
        assert server.verify("REGISTER", value, lookup_password, 0.0).outcome is AuthOutcome.MALFORMED


def test_server_refuses_weak_secrets() -> None:
    with pytest.raises(ValueError):
        DigestServer(REALM, b"short")


# --------------------------------------------------------------------------- client


def test_client_prefers_sha256_over_md5_whatever_the_order() -> None:
    md5 = 'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"'
    assert select_challenge([md5, sha]).algorithm is Algorithm.SHA256
    assert select_challenge([sha, md5]).algorithm is Algorithm.SHA256
    assert select_challenge([sha, md5], [Algorithm.MD5]).algorithm is Algorithm.MD5


def test_client_skips_unknown_and_garbage_challenges() -> None:
    unknown = 'Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"'
    md5 = 'Digest realm="r", nonce="n2", qop="auth"'
    assert select_challenge(["Basic realm=x", unknown, md5]).nonce == "n2"
    with pytest.raises(DigestError):
        select_challenge([unknown])
    with pytest.raises(DigestError):
        answer_challenge('Digest realm="r", nonce="n", qop="auth-conf"', "INVITE", "sip:x", "a", "b", cnonce="c")


def test_client_counts_per_nonce_and_reuses_the_last_challenge() -> None:
    server = make_server()
    cnonces = iter(f"c{i}" for i in range(10))
    client = DigestClient("bob", "zanzibar", cnonce_source=lambda: next(cnonces))
    assert client.reauthorize("REGISTER", URI) is None
    first = client.authorize(server.challenge(1000.0), "REGISTER", URI)
    again = client.reauthorize("REGISTER", URI)
    assert again is not None
    assert [Credentials.parse(h).nc for h in (first, again)] == ["00000001", "00000002"]
    assert Credentials.parse(first).algorithm is Algorithm.SHA256
    assert server.verify("REGISTER", first, lookup_password, 1001.0).ok
    assert server.verify("REGISTER", again, lookup_password, 1002.0).ok
    newer = client.authorize(server.challenge(1003.0, stale=True), "REGISTER", URI)
    assert Credentials.parse(newer).nc == "00000001"


def test_md5_only_client_against_double_challenge() -> None:
    server = make_server()
    client = DigestClient("alice", "wonderland", algorithms=[Algorithm.MD5])
    header = client.authorize(server.challenge(1000.0), "INVITE", "sip:bob@biloxi.com")
    assert Credentials.parse(header).algorithm is Algorithm.MD5
    assert server.verify("INVITE", header, lookup_ha1, 1001.0) == AuthResult(AuthOutcome.OK, "alice")


# --------------------------------------------------------------------------- fuzzing

_header_text = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.tuples(
            st.sampled_from(["realm", "nonce", "username", "uri", "response", "qop", "nc", "cnonce", "x"]),
            st.text(max_size=20),
            st.booleans(),
        ),
        max_size=8,
    ).map(lambda ps: "Digest " + ", ".join(f'{k}="{v}"' if quoted else f"{k}={v}" for k, v, quoted in ps)),
)


@settings(max_examples=300, deadline=None)
@given(_header_text)
def test_fuzz_parsers_raise_only_digest_error(value: str) -> None:
    for parse in (Challenge.parse, Credentials.parse):
        try:
            parse(value)
        except DigestError:
            pass
    result = make_server().verify("REGISTER", value, lookup_password, 0.0)
    assert result.outcome in (AuthOutcome.MALFORMED, AuthOutcome.INVALID)


_param = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_param, _param, _param, _param, st.none() | _param)
def test_fuzz_credentials_round_trip(username: str, realm: str, nonce: str, uri: str, opaque: str | None) -> None:
    creds = Credentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response="0" * 32,
        algorithm=Algorithm.SHA256,
        qop="auth",
        nc="0000002a",
        cnonce="c",
        opaque=opaque,
    )
    assert Credentials.parse(str(creds)) == creds
