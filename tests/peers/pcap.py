"""Write RTP streams as pcap files that SIPp's `play_pcap_audio` replays (Ethernet/IPv4/UDP/RTP,
the layout of the pcaps sip-tester ships). SIPp sends each packet's RTP to the call's negotiated
media address at the capture's pace; addresses and ports in the file are placeholders."""

from __future__ import annotations

import math
import struct
import warnings
from array import array
from pathlib import Path

with warnings.catch_warnings():  # the standard library's G.711, independent of ours (deprecated in 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

_GLOBAL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET
_ETH = bytes.fromhex("0050bf990336000d8714ac24") + b"\x08\x00"


def _ipv4_udp(payload: bytes, sport: int = 49200, dport: int = 10000) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([192, 168, 0, 3]), bytes([192, 168, 0, 1])
    )
    checksum = sum(struct.unpack("!10H", header))
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    header = header[:10] + struct.pack("!H", ~checksum & 0xFFFF) + header[12:]
    return header + udp


def write_rtp_pcap(path: Path, payloads: list[bytes], *, payload_type: int = 0, ptime_ms: int = 20) -> Path:
    """One RTP packet per payload, `ptime_ms` apart, timestamps advancing by the payload's length."""
    out = bytearray(_GLOBAL)
    seq, ts = 1000, 16000
    for i, payload in enumerate(payloads):
        rtp = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | payload_type, seq, ts, 0x1234ABCD) + payload
        frame = _ETH + _ipv4_udp(rtp)
        t_us = i * ptime_ms * 1000
        out += struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame
        seq, ts = seq + 1, ts + len(payload)
    path.write_bytes(bytes(out))
    return path


DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477),
}  # fmt: skip


def inband_dtmf_ulaw(digits: str, tone_ms: int = 120, gap_ms: int = 120, lead_ms: int = 400) -> list[bytes]:
    """G.711 µ-law 20 ms payloads of DTMF tones (ITU-T Q.23 pairs), each tone then a pause."""
    samples: list[int] = [0] * (8 * lead_ms)
    for digit in digits:
        low, high = DTMF_FREQS[digit]
        for n in range(8 * tone_ms):
            t = n / 8000
            samples.append(int(9000 * (math.sin(2 * math.pi * low * t) + math.sin(2 * math.pi * high * t))))
        samples += [0] * (8 * gap_ms)
    samples += [0] * (160 - len(samples) % 160)
    pcm = array("h", samples).tobytes()
    return [audioop.lin2ulaw(pcm[i : i + 320], 2) for i in range(0, len(pcm), 320)]
