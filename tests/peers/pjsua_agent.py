"""A PJSIP (pjsua2) user agent in its own process, driven by JSON lines on stdin.

Run by :mod:`tests.peers.pjsua` as ``python pjsua_agent.py '<config json>'``; never imported by the
test process (pjsua2 starts threads, owns sockets and must not share pytest's process). One
process is one PJSIP endpoint with up to one UDP, TCP and TLS transport and any number of
accounts; audio uses the null sound device, so calls are heard through WAV players/recorders.

Protocol (one JSON object per line, UTF-8):

- stdin, commands: ``{"id": 7, "cmd": "make_call", "args": {...}}``
- stdout, replies: ``{"id": 7, "ok": true, "result": {...}}`` or ``{"id": 7, "ok": false,
  "error": "..."}``
- stdout, events: ``{"event": "call_state", ...}``, emitted whenever PJSIP reports something:
  ``ready``, ``fatal``, ``reg_state``, ``incoming_call``, ``call_state``, ``call_media``,
  ``dtmf_received``, ``message_received``, ``message_status``, ``options_response``,
  ``transfer_request``, ``transfer_status``, ``play_done``, ``record_done``, ``log``.

Commands and their arguments are the ``_cmd_*`` methods below. Calls, accounts and buddies are
named by handles this agent assigns (``"a1"``, ``"c3"``) -- PJSIP's own ids are reused.

Threading: ``threadCnt = 0`` and ``mainThreadOnly``, so every PJSIP callback runs inside
``libHandleEvents()`` on the one thread of this process, between commands. Stdout is reserved
for the protocol: the process's fd 1 is pointed at stderr, so a native library printing to
stdout cannot corrupt it; PJSIP logs to a file.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any

import pjsua2 as pj

_protocol_out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)  # anything else writing to fd 1 ends up on stderr

TRANSPORTS = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}
DTMF_METHODS = {"rfc2833": pj.PJSUA_DTMF_METHOD_RFC2833, "info": pj.PJSUA_DTMF_METHOD_SIP_INFO}
DTMF_METHOD_NAMES = {v: k for k, v in DTMF_METHODS.items()}
SRTP_USE = {
    "disabled": pj.PJMEDIA_SRTP_DISABLED,
    "optional": pj.PJMEDIA_SRTP_OPTIONAL,
    "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
}
MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}
CALL_STATES = {
    pj.PJSIP_INV_STATE_NULL: "null",
    pj.PJSIP_INV_STATE_CALLING: "calling",
    pj.PJSIP_INV_STATE_INCOMING: "incoming",
    pj.PJSIP_INV_STATE_EARLY: "early",
    pj.PJSIP_INV_STATE_CONNECTING: "connecting",
    pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
    pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
}


def emit(obj: dict[str, Any]) -> None:
    _protocol_out.write(json.dumps(obj, separators=(",", ":")) + "\n")


def event(kind: str, **fields: Any) -> None:
    emit({"event": kind, "t": round(time.monotonic(), 3), **fields})


class CommandError(Exception):
    """A command that cannot be carried out; its message goes back in the reply."""


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, pj.Error):
        return f"{exc.title}: {exc.reason} (status {exc.status})"
    return f"{type(exc).__name__}: {exc}"


class AgentAccount(pj.Account):  # type: ignore[misc]  # pjsua2 has no type information
    def __init__(self, agent: Agent, handle: str, auto_answer: int | None, answer_delay_ms: int) -> None:
        super().__init__()
        self.agent = agent
        self.handle = handle
        self.auto_answer = auto_answer
        self.answer_delay_ms = answer_delay_ms

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        info = self.getInfo()
        event(
            "reg_state",
            account=self.handle,
            code=prm.code,
            reason=prm.reason,
            expiration=prm.expiration,
            active=bool(info.regIsActive),
        )

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = self.agent.adopt_call(self, prm.callId)
        info = call.getInfo()
        event(
            "incoming_call",
            account=self.handle,
            call=call.handle,
            remote_uri=info.remoteUri,
            local_uri=info.localUri,
            call_id=info.callIdString,
        )
        if self.auto_answer is not None:
            if self.answer_delay_ms > 0:
                _answer(call, 180)
                self.agent.later(self.answer_delay_ms / 1000, lambda: _answer_if_alive(call, self.auto_answer))
            else:
                _answer(call, self.auto_answer)

    def onInstantMessage(self, prm: pj.OnInstantMessageParam) -> None:
        event(
            "message_received",
            account=self.handle,
            from_uri=prm.fromUri,
            to_uri=prm.toUri,
            content_type=prm.contentType,
            body=prm.msgBody,
        )

    def onInstantMessageStatus(self, prm: pj.OnInstantMessageStatusParam) -> None:
        event("message_status", account=self.handle, to_uri=prm.toUri, code=prm.code, reason=prm.reason)

    def onSendRequest(self, prm: pj.OnSendRequestParam) -> None:
        code, reason, message = 0, "", ""
        try:
            tsx = prm.e.body.tsxState.tsx
            code, reason = tsx.statusCode, tsx.statusText
            message = prm.e.body.tsxState.src.rdata.wholeMsg  # empty for a timeout
        except Exception:  # pjsua2 versions differ in what they fill in
            pass
        event(
            "options_response",
            account=self.handle,
            code=code,
            reason=reason,
            message=message,
            token=str(prm.userData or ""),
        )


def _credential(args: dict[str, Any]) -> pj.AuthCredInfo:
    """A plain password, or for ``algorithm`` md5 an MD5 HA1 (RFC 7616 §3.4.2) that answers MD5
    challenges only.

    With a plain password PJSIP answers the first challenge it supports (sip_auth_client.c
    ``auth_find_cred`` ignores ``algorithm_type`` for passwords). Only a digest credential is
    bound to an algorithm, and pjsua2 2.15.1 drops ``AuthCredInfo.algoType`` on the way to
    pjsua (account.cpp ``AccountConfig::toPj``), where a digest credential then counts as MD5:
    so MD5 can be forced, SHA-256 and SHA-512-256 cannot."""
    username, realm, password = args["username"], args.get("realm", "*"), args.get("password", "")
    algorithm = (args.get("algorithm") or "").lower() or None
    if algorithm is None:
        return pj.AuthCredInfo("digest", realm, username, pj.PJSIP_CRED_DATA_PLAIN_PASSWD, password)
    if algorithm != "md5":
        raise CommandError(f"pjsua2 cannot restrict a credential to {algorithm}, only to md5")
    if realm == "*":
        raise CommandError("algorithm=md5 needs the realm: the HA1 is computed over it")
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    return pj.AuthCredInfo("digest", realm, username, pj.PJSIP_CRED_DATA_DIGEST, ha1)


def _answer(call: AgentCall, code: int, reason: str = "") -> None:
    op = pj.CallOpParam()
    op.statusCode = code
    if reason:
        op.reason = reason
    call.answer(op)


def _answer_if_alive(call: AgentCall, code: int | None) -> None:
    if code is not None and call.isActive() and not call.disconnected:
        _answer(call, code)


class AgentPlayer(pj.AudioMediaPlayer):  # type: ignore[misc]  # pjsua2 has no type information
    def __init__(self, call_handle: str, path: str) -> None:
        super().__init__()
        self.call_handle = call_handle
        self.path = path
        self.done = False

    def onEof2(self) -> None:
        self.done = True
        event("play_done", call=self.call_handle, path=self.path)


class AgentCall(pj.Call):  # type: ignore[misc]  # pjsua2 has no type information
    def __init__(self, agent: Agent, handle: str, account: AgentAccount, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.agent = agent
        self.handle = handle
        self.account = account
        self.player: AgentPlayer | None = None
        self.loop_play = False
        self.recorder: pj.AudioMediaRecorder | None = None
        self.record_path: str | None = None
        self.connected_media: pj.AudioMedia | None = None
        self.disconnected = False

    # -- media plumbing: what the test wants (player, recorder) is re-attached whenever the call's
    # audio becomes active again (answer, unhold, re-INVITE), since PJSIP may recreate the stream.
    def audio_media(self) -> pj.AudioMedia | None:
        info = self.getInfo()
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
            ):
                return self.getAudioMedia(mi.index)
        return None

    def attach(self) -> None:
        media = self.audio_media()
        if media is None:
            return
        self.connected_media = media
        if self.player is not None:
            self.player.startTransmit(media)
        if self.recorder is not None:
            media.startTransmit(self.recorder)

    def stop_player(self) -> None:
        if self.player is not None:
            if self.connected_media is not None:
                try:
                    self.player.stopTransmit(self.connected_media)
                except pj.Error:
                    pass
            self.player = None

    def stop_recorder(self) -> None:
        if self.recorder is not None:
            if self.connected_media is not None:
                try:
                    self.connected_media.stopTransmit(self.recorder)
                except pj.Error:
                    pass
            self.recorder = None  # destroying the port finishes the WAV header...
            # ...but the conference bridge removes the port asynchronously: report the file done
            # once its RIFF header has been rewritten with the final size.
            handle = self.handle
            self.agent.when_wav_complete(self.record_path, lambda path: event("record_done", call=handle, path=path))

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        state = CALL_STATES.get(info.state, str(info.state))
        event(
            "call_state",
            call=self.handle,
            account=self.account.handle,
            state=state,
            code=info.lastStatusCode,
            reason=info.lastReason,
            remote_uri=info.remoteUri,
            call_id=info.callIdString,
            role="caller" if info.role == pj.PJSIP_ROLE_UAC else "callee",
        )
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.stop_player()
            self.stop_recorder()
            self.connected_media = None
            self.agent.forget_call_later(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                event("call_media", call=self.handle, status=MEDIA_STATUS.get(mi.status, str(mi.status)))
        self.attach()

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        event(
            "dtmf_received",
            call=self.handle,
            digit=prm.digit,
            method=DTMF_METHOD_NAMES.get(prm.method, str(prm.method)),
            duration_ms=prm.duration,
        )

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        event("transfer_request", call=self.handle, target=prm.dstUri)
        if self.agent.accept_transfers:
            new_call = self.agent.new_call(self.account)
            prm.newCall = new_call
            event("transfer_call", call=self.handle, new_call=new_call.handle, target=prm.dstUri)
        else:
            prm.statusCode = 603

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        event(
            "transfer_status",
            call=self.handle,
            code=prm.statusCode,
            reason=prm.reason,
            final=bool(prm.finalNotify),
        )

    def onInstantMessage(self, prm: pj.OnInstantMessageParam) -> None:
        event(
            "message_received",
            account=self.account.handle,
            call=self.handle,
            from_uri=prm.fromUri,
            to_uri=prm.toUri,
            content_type=prm.contentType,
            body=prm.msgBody,
        )


class Agent:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.ep = pj.Endpoint()
        self.accounts: dict[str, AgentAccount] = {}
        self.calls: dict[str, AgentCall] = {}
        self.buddies: list[pj.Buddy] = []
        self.transports: dict[str, int] = {}
        self.ports: dict[str, int] = {}
        self.timers: list[tuple[float, Any]] = []
        self.accept_transfers = bool(config.get("accept_transfers", True))
        self._counter = 0
        self._graveyard: list[AgentCall] = []
        self.running = True

    def next_handle(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        self.ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = int(cfg.get("max_calls", 8))
        ep_cfg.uaConfig.userAgent = cfg.get("user_agent", f"voxswitch-test-pjsua/{self.ep.libVersion().full}")
        ep_cfg.logConfig.level = int(cfg.get("log_level", 4))
        ep_cfg.logConfig.consoleLevel = 0
        ep_cfg.logConfig.msgLogging = 1
        if cfg.get("log_file"):
            ep_cfg.logConfig.filename = cfg["log_file"]
        ep_cfg.medConfig.noVad = True
        ep_cfg.medConfig.ecTailLen = 0
        ep_cfg.medConfig.clockRate = int(cfg.get("clock_rate", 8000))
        ep_cfg.medConfig.sndClockRate = int(cfg.get("clock_rate", 8000))
        ep_cfg.medConfig.threadCnt = 0
        ep_cfg.medConfig.hasIoqueue = True
        self.ep.libInit(ep_cfg)

        host = cfg.get("host", "127.0.0.1")
        tls = cfg.get("tls") or {}
        for name, port in (cfg.get("transports") or {"udp": 0}).items():
            tcfg = pj.TransportConfig()
            tcfg.port = int(port)
            tcfg.boundAddress = host
            tcfg.publicAddress = host
            if name == "tls":
                tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
                tcfg.tlsConfig.verifyServer = bool(tls.get("verify_server", False))
                tcfg.tlsConfig.verifyClient = False
                if tls.get("cert_file"):
                    tcfg.tlsConfig.certFile = tls["cert_file"]
                    tcfg.tlsConfig.privKeyFile = tls["key_file"]
                if tls.get("ca_file"):
                    tcfg.tlsConfig.CaListFile = tls["ca_file"]
            kind = TRANSPORTS[name] if ":" not in host else TRANSPORTS[name] + 0x80  # PJSIP_TRANSPORT_IPV6
            tid = self.ep.transportCreate(kind, tcfg)
            self.transports[name] = tid
            self.ports[name] = int(self.ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        codecs = cfg.get("codecs")
        if codecs:  # e.g. ["PCMA/8000", "PCMU/8000", "telephone-event"]: these only, in this order
            for info in self.ep.codecEnum2():
                self.ep.codecSetPriority(info.codecId, 0)
            for prio, codec in enumerate(codecs):
                self.ep.codecSetPriority(codec, 255 - prio)
        event(
            "ready",
            version=self.ep.libVersion().full,
            ports=self.ports,
            pid=os.getpid(),
            codecs=[c.codecId for c in self.ep.codecEnum2() if c.priority > 0],
        )

    def shutdown(self, graceful: bool) -> None:
        try:
            if graceful:
                self.ep.hangupAllCalls()
                self.pump(0.3)
            for call in self.calls.values():
                call.stop_player()
                call.stop_recorder()
            self.calls.clear()
            self._graveyard.clear()
            self.buddies.clear()
            # Graceful: libDestroy() un-REGISTERs every account and waits (unreg_wait_ms) for the
            # answers. Otherwise nothing more goes on the wire; the Python objects are never
            # destroyed (main() ends with os._exit), so keeping the accounts is harmless.
            self.ep.libDestroy(0 if graceful else pj.PJSUA_DESTROY_NO_NETWORK)
        finally:
            _protocol_out.flush()

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ep.libHandleEvents(10)

    # -- helpers ---------------------------------------------------------------------------
    def later(self, delay: float, fn: Any) -> None:
        self.timers.append((time.monotonic() + delay, fn))

    def run_timers(self) -> None:
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        self.timers = [t for t in self.timers if t[0] > now]
        for _, fn in due:
            try:
                fn()
            except Exception as exc:
                event("log", level="error", message=f"timer failed: {_error_text(exc)}")

    def when_wav_complete(self, path: str | None, then: Any, deadline: float | None = None) -> None:
        if path is None:
            return
        deadline = deadline or time.monotonic() + 3.0
        try:
            with open(path, "rb") as f:
                header = f.read(8)
            complete = len(header) == 8 and int.from_bytes(header[4:8], "little") + 8 == os.path.getsize(path)
        except OSError:
            complete = False
        if complete or time.monotonic() > deadline:
            then(path)
        else:
            self.later(0.02, lambda: self.when_wav_complete(path, then, deadline))

    def new_call(self, account: AgentAccount, call_id: int = pj.PJSUA_INVALID_ID) -> AgentCall:
        call = AgentCall(self, self.next_handle("c"), account, call_id)
        self.calls[call.handle] = call
        return call

    def adopt_call(self, account: AgentAccount, call_id: int) -> AgentCall:
        return self.new_call(account, call_id)

    def forget_call_later(self, call: AgentCall) -> None:
        # The Call object must outlive the callback that reports its end; drop it a bit later.
        self._graveyard.append(call)
        self.later(2.0, lambda: self._bury(call))

    def _bury(self, call: AgentCall) -> None:
        if call in self._graveyard:
            self._graveyard.remove(call)
        self.calls.pop(call.handle, None)

    def account(self, args: dict[str, Any]) -> AgentAccount:
        handle = args.get("account") or next(iter(self.accounts), None)
        if handle not in self.accounts:
            raise CommandError(f"no account {handle!r}")
        return self.accounts[handle]

    def call(self, args: dict[str, Any]) -> AgentCall:
        handle = args.get("call")
        if handle not in self.calls:
            raise CommandError(f"no call {handle!r}")
        return self.calls[handle]

    @staticmethod
    def tx_option(args: dict[str, Any]) -> pj.SipTxOption:
        opt = pj.SipTxOption()
        for name, value in (args.get("headers") or {}).items():
            h = pj.SipHeader()
            h.hName = name
            h.hValue = str(value)
            opt.headers.append(h)
        return opt

    # -- commands --------------------------------------------------------------------------
    def handle(self, msg: dict[str, Any]) -> None:
        cid = msg.get("id")
        name = str(msg.get("cmd", ""))
        fn = getattr(self, f"_cmd_{name}", None)
        if fn is None:
            emit({"id": cid, "ok": False, "error": f"unknown command {name!r}"})
            return
        try:
            result = fn(msg.get("args") or {})
        except (CommandError, pj.Error, KeyError, ValueError, TypeError) as exc:
            emit({"id": cid, "ok": False, "error": _error_text(exc)})
            return
        except Exception as exc:
            emit({"id": cid, "ok": False, "error": _error_text(exc), "traceback": traceback.format_exc()})
            return
        emit({"id": cid, "ok": True, "result": result if result is not None else {}})

    def _cmd_flush(self, args: dict[str, Any]) -> dict[str, Any]:
        """Flush C stdio buffers: PJSIP writes its log file through a buffered FILE*."""
        ctypes.CDLL(None).fflush(None)
        return {}

    def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "ports": self.ports}

    def _cmd_account_add(self, args: dict[str, Any]) -> dict[str, Any]:
        """id_uri, registrar (None: no registration), username, password, realm ("*"),
        algorithm (None: the first challenge PJSIP supports | md5: MD5 challenges only; needs
        realm),
        transport (udp|tcp|tls), register (bool), reg_timeout (s), proxy, auto_answer (code),
        answer_delay_ms, srtp (disabled|optional|mandatory), outbound (RFC 5626, bool),
        contact_params, headers (on REGISTER), rtp_port, rtp_port_range."""
        acfg = pj.AccountConfig()
        acfg.idUri = args["id_uri"]
        transport = args.get("transport", "udp")
        if transport not in self.transports:
            raise CommandError(f"transport {transport} was not created (have {sorted(self.transports)})")
        acfg.sipConfig.transportId = self.transports[transport]
        registrar = args.get("registrar")
        if registrar:
            if transport != "udp" and "transport=" not in registrar:
                registrar += f";transport={transport}"
            acfg.regConfig.registrarUri = registrar
            acfg.regConfig.registerOnAdd = bool(args.get("register", True))
            acfg.regConfig.timeoutSec = int(args.get("reg_timeout", 300))
            acfg.regConfig.retryIntervalSec = int(args.get("retry_interval", 0))
            acfg.regConfig.unregWaitMsec = int(args.get("unreg_wait_ms", 1000))
            for name, value in (args.get("headers") or {}).items():
                h = pj.SipHeader()
                h.hName = name
                h.hValue = str(value)
                acfg.regConfig.headers.append(h)
        if args.get("proxy"):
            acfg.sipConfig.proxies.append(args["proxy"])
        if args.get("contact_params"):
            acfg.sipConfig.contactParams = args["contact_params"]
        if args.get("username") is not None:
            acfg.sipConfig.authCreds.append(_credential(args))
        acfg.natConfig.sipOutboundUse = 1 if args.get("outbound", False) else 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.udpKaIntervalSec = 0
        acfg.mediaConfig.srtpUse = SRTP_USE[args.get("srtp", "disabled")]
        acfg.mediaConfig.srtpSecureSignaling = int(args.get("srtp_secure_signaling", 0))
        host = self.config.get("host", "127.0.0.1")
        acfg.mediaConfig.transportConfig.boundAddress = host
        acfg.mediaConfig.transportConfig.publicAddress = host
        if args.get("rtp_port"):
            acfg.mediaConfig.transportConfig.port = int(args["rtp_port"])
            acfg.mediaConfig.transportConfig.portRange = int(args.get("rtp_port_range", 10))
        handle = self.next_handle("a")
        auto = args.get("auto_answer")
        acc = AgentAccount(self, handle, None if auto is None else int(auto), int(args.get("answer_delay_ms", 0)))
        acc.create(acfg, bool(args.get("default", False)))
        self.accounts[handle] = acc
        return {"account": handle, "uri": args["id_uri"]}

    def _cmd_account_register(self, args: dict[str, Any]) -> dict[str, Any]:
        """account, renew (bool; false un-REGISTERs)."""
        self.account(args).setRegistration(bool(args.get("renew", True)))
        return {}

    def _cmd_account_info(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self.account(args).getInfo()
        return {
            "uri": info.uri,
            "reg_active": bool(info.regIsActive),
            "reg_status": info.regStatus,
            "reg_reason": info.regStatusText,
            "reg_expires": info.regExpiresSec,
        }

    def _cmd_account_set(self, args: dict[str, Any]) -> dict[str, Any]:
        """account, auto_answer (code or None), answer_delay_ms."""
        acc = self.account(args)
        if "auto_answer" in args:
            acc.auto_answer = None if args["auto_answer"] is None else int(args["auto_answer"])
        if "answer_delay_ms" in args:
            acc.answer_delay_ms = int(args["answer_delay_ms"])
        return {}

    def _cmd_account_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        acc = self.account(args)
        acc.shutdown()
        self.accounts.pop(acc.handle, None)
        return {}

    def _cmd_make_call(self, args: dict[str, Any]) -> dict[str, Any]:
        """account, uri, headers."""
        acc = self.account(args)
        call = self.new_call(acc)
        op = pj.CallOpParam(True)
        op.opt.audioCount = 1
        op.opt.videoCount = 0
        op.txOption = self.tx_option(args)
        try:
            call.makeCall(args["uri"], op)
        except pj.Error:
            self.calls.pop(call.handle, None)
            raise
        return {"call": call.handle}

    def _cmd_answer(self, args: dict[str, Any]) -> dict[str, Any]:
        """call, code (180/183/200...), reason."""
        _answer(self.call(args), int(args.get("code", 200)), str(args.get("reason", "")))
        return {}

    def _cmd_hangup(self, args: dict[str, Any]) -> dict[str, Any]:
        """call, code (e.g. 486 to reject an incoming call; default: whatever fits the state)."""
        op = pj.CallOpParam()
        if args.get("code"):
            op.statusCode = int(args["code"])
        self.call(args).hangup(op)
        return {}

    def _cmd_hangup_all(self, args: dict[str, Any]) -> dict[str, Any]:
        self.ep.hangupAllCalls()
        return {}

    def _cmd_call_info(self, args: dict[str, Any]) -> dict[str, Any]:
        call = self.call(args)
        info = call.getInfo()
        return {
            "state": CALL_STATES.get(info.state, str(info.state)),
            "code": info.lastStatusCode,
            "reason": info.lastReason,
            "remote_uri": info.remoteUri,
            "local_uri": info.localUri,
            "call_id": info.callIdString,
            "media": [MEDIA_STATUS.get(m.status, str(m.status)) for m in info.media],
            "connect_duration_s": info.connectDuration.sec + info.connectDuration.msec / 1000,
        }

    def _cmd_call_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        """call: RTP counters of its audio stream (packets/bytes sent and received, losses)."""
        call = self.call(args)
        info = call.getInfo()
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                st = call.getStreamStat(mi.index).rtcp
                si = call.getStreamInfo(mi.index)
                return {
                    "codec": f"{si.codecName}/{si.codecClockRate}",
                    "tx_packets": st.txStat.pkt,
                    "rx_packets": st.rxStat.pkt,
                    "tx_bytes": st.txStat.bytes,
                    "rx_bytes": st.rxStat.bytes,
                    "rx_lost": st.rxStat.loss,
                }
        raise CommandError("call has no audio stream")

    def _cmd_play(self, args: dict[str, Any]) -> dict[str, Any]:
        """call, path (WAV, 16-bit PCM), loop (bool). Replaces what the call was playing."""
        call = self.call(args)
        call.stop_player()
        player = AgentPlayer(call.handle, args["path"])
        player.createPlayer(args["path"], 0 if args.get("loop") else pj.PJMEDIA_FILE_NO_LOOP)
        call.player = player
        call.attach()
        return {"attached": call.connected_media is not None}

    def _cmd_stop_play(self, args: dict[str, Any]) -> dict[str, Any]:
        self.call(args).stop_player()
        return {}

    def _cmd_record(self, args: dict[str, Any]) -> dict[str, Any]:
        """call, path (.wav): record what the call receives, until stop_record or hang-up."""
        call = self.call(args)
        call.stop_recorder()
        rec = pj.AudioMediaRecorder()
        rec.createRecorder(args["path"])
        call.recorder = rec
        call.record_path = args["path"]
        call.attach()
        return {"attached": call.connected_media is not None}

    def _cmd_stop_record(self, args: dict[str, Any]) -> dict[str, Any]:
        self.call(args).stop_recorder()
        return {}

    def _cmd_send_dtmf(self, args: dict[str, Any]) -> dict[str, Any]:
        """call, digits, method (rfc2833 | info), duration_ms."""
        prm = pj.CallSendDtmfParam()
        prm.digits = str(args["digits"])
        prm.method = DTMF_METHODS[args.get("method", "rfc2833")]
        prm.duration = int(args.get("duration_ms", 160))
        self.call(args).sendDtmf(prm)
        return {}

    def _cmd_hold(self, args: dict[str, Any]) -> dict[str, Any]:
        """call: re-INVITE putting the remote on hold (a=sendonly)."""
        self.call(args).setHold(pj.CallOpParam(True))
        return {}

    def _cmd_unhold(self, args: dict[str, Any]) -> dict[str, Any]:
        op = pj.CallOpParam(True)
        op.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.call(args).reinvite(op)
        return {}

    def _cmd_reinvite(self, args: dict[str, Any]) -> dict[str, Any]:
        self.call(args).reinvite(pj.CallOpParam(True))
        return {}

    def _cmd_transfer(self, args: dict[str, Any]) -> dict[str, Any]:
        """call, target (URI): blind transfer with REFER."""
        self.call(args).xfer(args["target"], pj.CallOpParam(True))
        return {}

    def _cmd_transfer_replaces(self, args: dict[str, Any]) -> dict[str, Any]:
        """call, other (call handle): attended transfer (REFER with Replaces)."""
        other = self.calls[args["other"]]
        self.call(args).xferReplaces(other, pj.CallOpParam(True))
        return {}

    def _cmd_send_message(self, args: dict[str, Any]) -> dict[str, Any]:
        """account, to (URI), body, content_type; or call + body for an in-dialog MESSAGE."""
        prm = pj.SendInstantMessageParam()
        prm.content = str(args.get("body", ""))
        prm.contentType = str(args.get("content_type", "text/plain"))
        prm.txOption = self.tx_option(args)
        if args.get("call"):
            self.call(args).sendInstantMessage(prm)
            return {}
        acc = self.account(args)
        bcfg = pj.BuddyConfig()
        bcfg.uri = args["to"]
        bcfg.subscribe = False
        buddy = pj.Buddy()
        buddy.create(acc, bcfg)
        self.buddies.append(buddy)
        buddy.sendInstantMessage(prm)
        return {}

    def _cmd_send_options(self, args: dict[str, Any]) -> dict[str, Any]:
        """account, to (URI), headers: out-of-dialog OPTIONS; answer in an options_response event."""
        prm = pj.SendRequestParam()
        prm.method = "OPTIONS"
        prm.txOption = self.tx_option(args)
        prm.txOption.targetUri = args["to"]
        self.account(args).sendRequest(prm)
        return {}

    def _cmd_quit(self, args: dict[str, Any]) -> dict[str, Any]:
        self.running = False
        self.graceful = bool(args.get("graceful", False))
        return {}

    # -- main loop -------------------------------------------------------------------------
    def serve(self) -> None:
        self.graceful = False
        buf = b""
        stdin = sys.stdin.fileno()
        while self.running:
            self.ep.libHandleEvents(10)
            self.run_timers()
            ready, _, _ = select.select([stdin], [], [], 0)
            if not ready:
                continue
            chunk = os.read(stdin, 65536)
            if not chunk:  # the test process went away: end at once
                break
            buf += chunk
            while b"\n" in buf and self.running:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    try:
                        msg = json.loads(line)
                    except json.JSONDecodeError as exc:
                        emit({"id": None, "ok": False, "error": f"bad JSON: {exc}"})
                        continue
                    self.handle(msg)


def main() -> None:
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    agent = Agent(config)
    try:
        agent.start()
    except Exception as exc:
        event("fatal", error=_error_text(exc), traceback=traceback.format_exc())
        _protocol_out.flush()
        os._exit(2)
    try:
        agent.serve()
    finally:
        agent.shutdown(graceful=getattr(agent, "graceful", False))
        event("exit")
        _protocol_out.flush()
        # Skip interpreter teardown: SWIG destructors after libDestroy() can crash.
        os._exit(0)


if __name__ == "__main__":
    main()
