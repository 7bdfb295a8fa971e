"""Voxswitch: a self-hosted voice platform (SIP PBX, B2BUA, media engine and voice APIs) in one process."""

__version__ = "0.1.0"
