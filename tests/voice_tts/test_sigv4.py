"""AWS Signature Version 4 against AWS's own published examples (vectors/aws_sigv4.json)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from voxswitch.voice.tts.sigv4 import AwsCredentials, canonical_request, sign_headers, signing_key

VECTORS = json.loads((Path(__file__).parent / "vectors" / "aws_sigv4.json").read_text())
CREDS = AwsCredentials(**VECTORS["credentials"])
WHEN = datetime.fromisoformat(VECTORS["when"].replace("Z", "+00:00"))


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_signature_matches_aws_documented_example(case: dict[str, Any]) -> None:
    headers = sign_headers(
        case["method"],
        case["url"],
        case["headers"],
        case["payload"].encode(),
        CREDS,
        region=case["region"],
        service=case["service"],
        now=WHEN,
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == case["authorization"]

    signed = {k: v for k, v in headers.items() if k != "Authorization"}
    creq, _ = canonical_request(
        case["method"], case["url"], signed, hashlib.sha256(case["payload"].encode()).hexdigest()
    )
    if "canonical_request" in case:
        assert creq == case["canonical_request"]
    if "canonical_request_sha256" in case:
        assert hashlib.sha256(creq.encode()).hexdigest() == case["canonical_request_sha256"]
    if "signing_key" in case:
        key = signing_key(CREDS.secret_access_key, "20150830", case["region"], case["service"])
        assert key.hex() == case["signing_key"]


def test_session_token_is_sent_and_signed() -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "secret", session_token="token/with+chars")
    headers = sign_headers(
        "POST",
        "https://polly.eu-west-1.amazonaws.com/v1/speech",
        {},
        b"{}",
        creds,
        region="eu-west-1",
        service="polly",
        now=WHEN,
    )
    assert headers["X-Amz-Security-Token"] == "token/with+chars"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in headers["Authorization"]
    assert headers["Host"] == "polly.eu-west-1.amazonaws.com"
