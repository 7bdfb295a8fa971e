"""Voxswitch's SIP endpoint: authenticates every request that could cost money, runs the registrar,
answers OPTIONS, relays MESSAGE between devices, and bans sources that guess passwords.

Security by default (issue #3 §8): nothing reaches a device or a trunk without digest
authentication or a configured trusted source; an unknown user and a wrong password get the same
challenge; OPTIONS is answered the same whatever user it names, so probing learns nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import ssl
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from typing import Any, TypeVar

from voxswitch.engine.accounts import AccountDirectory, SipAccount
from voxswitch.engine.calls import CallManager
from voxswitch.engine.registrar import BindingBook
from voxswitch.sip.digest import Algorithm, AuthOutcome, Credentials, DigestError, DigestServer
from voxswitch.sip.forking import best_response
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.registrar import Binding, RegisterOutcome, RegistrarError
from voxswitch.sip.security import AuthGuard, Ban, BanPolicy
from voxswitch.sip.stack import RequestFailed, SipStack
from voxswitch.sip.transaction import ServerTransaction, Target, Timers
from voxswitch.sip.uri import SipUri
from voxswitch.store.database import Database
from voxswitch.store.models import SipEvent

log = logging.getLogger(__name__)
T = TypeVar("T")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, REFER, NOTIFY, SUBSCRIBE"


@dataclass(frozen=True)
class SipServerConfig:
    realm: str = "voxswitch"
    algorithms: tuple[Algorithm, ...] = (Algorithm.SHA256, Algorithm.MD5)
    host: str = "0.0.0.0"
    port: int = 5060
    tls_port: int | None = 5061
    tls_context: ssl.SSLContext | None = None
    advertised_host: str | None = None
    trusted_sources: tuple[str, ...] = ()
    timers: Timers = field(default_factory=Timers)
    ban: BanPolicy = field(default_factory=BanPolicy)


class SipServer:
    """The transaction user of our SIP stack (see `sip.stack.SipHandler`)."""

    def __init__(
        self,
        config: SipServerConfig,
        db: Database,
        accounts: AccountDirectory,
        bindings: BindingBook,
        secret: bytes,
    ) -> None:
        self.config = config
        self.db = db
        self.accounts = accounts
        self.bindings = bindings
        digest_secret = hmac.new(secret, b"sip-digest-nonce", hashlib.sha256).digest()
        self.digest = DigestServer(config.realm, digest_secret, algorithms=config.algorithms)
        self.guard = AuthGuard(config.ban, on_ban=self._on_ban)
        self.stack = SipStack(self, timers=config.timers, drop=self._banned)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._date_second, self._date_text = 0, ""
        self._entropy = b""
        self._stopped = False
        self.calls: CallManager | None = None  # set by the engine once media and TTS are ready

    # lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> dict[str, tuple[str, int]]:
        c = self.config
        tls = (c.host, c.tls_port, c.tls_context) if c.tls_context is not None and c.tls_port is not None else None
        udp = await self.stack.start(udp=(c.host, c.port))
        port = udp["UDP"][1]  # with port 0, TCP takes the number UDP was given
        await self.stack.start(tcp=(c.host, port), tls=tls)
        return dict(self.stack.transport.listen)

    async def stop(self) -> None:
        self._stopped = True
        if self.calls is not None:
            await self.calls.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.stack.stop()

    def _tag(self) -> str:
        """A To tag for our responses (§19.3: unique, at least 32 random bits), 64 bits from a pool
        of entropy refilled every 128 tags: one system call instead of one per response."""
        if not self._entropy:
            self._entropy = os.urandom(8 * 128)
        chunk, self._entropy = self._entropy[:8], self._entropy[8:]
        return chunk.hex()

    def _spawn(self, coro: Coroutine[object, object, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # the handler ---------------------------------------------------------------------------------

    def _banned(self, source: Target) -> bool:
        return self.guard.is_banned(source.host, time.monotonic())

    def on_stray_response(self, response: Response, source: Target) -> None:
        if self.calls is not None and self.calls.on_stray_response(response):
            return
        log.debug("stray %s from %s:%s", response.status, source.host, source.port)

    def on_request(self, txn: ServerTransaction | None, request: Request, source: Target) -> None:
        calls = self.calls
        if txn is None:  # the ACK of a 2xx: end to end, the dialog's (§13.2.2.4)
            if calls is not None:
                calls.on_in_dialog(None, request)
            return
        method = request.method
        if method == "OPTIONS":
            self._answer_options(txn, request)
            return
        # In-dialog requests and CANCEL are matched to a call we already accepted; the dialog (or
        # the INVITE transaction) identifies them, so they are not challenged again.
        if calls is not None and (method == "CANCEL" or request.to.tag is not None):
            if calls.on_in_dialog(txn, request):
                return
        if method == "CANCEL":
            self._answer_cancel(txn, request)
            return
        account = self._authenticate(txn, request, source)
        if account is None:
            return
        if method == "REGISTER":
            self._register(txn, request, source, account)
        elif method == "MESSAGE":
            self._spawn(self._relay_message(txn, request, account))
        elif method == "SUBSCRIBE":
            self.stack.respond(txn, build_response(request, 489, "Bad Event"))
        elif method == "INVITE" and request.to.tag is None and calls is not None:
            trusted = account.id == 0 and account.username.startswith("trusted:")
            calls.on_invite(txn, request, source, device=None if trusted else account.username, trusted=trusted)
        elif method == "INVITE":
            self.stack.respond(txn, build_response(request, 480, "Temporarily Unavailable"))
        elif method in ("BYE", "INFO", "UPDATE", "NOTIFY", "REFER", "PRACK"):
            self.stack.respond(txn, build_response(request, 481, "Call/Transaction Does Not Exist"))
        else:
            self.stack.respond(txn, build_response(request, 405, "Method Not Allowed", headers=[("Allow", ALLOW)]))

    def _answer_options(self, txn: ServerTransaction, request: Request) -> None:
        # §11.2: the same capabilities whoever is named, so OPTIONS cannot probe for users.
        self.stack.respond(
            txn,
            build_response(
                request,
                200,
                to_tag=self._tag(),
                headers=[
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp, text/plain"),
                    ("Accept-Encoding", "identity"),
                    ("Accept-Language", "en"),
                    ("Supported", "replaces, timer"),
                ],
            ),
        )

    def _answer_cancel(self, txn: ServerTransaction, request: Request) -> None:
        invite = self.stack.layer.find_server(request)
        if invite is None or invite.terminated:  # §9.2: nothing to cancel
            self.stack.respond(txn, build_response(request, 481, "Call/Transaction Does Not Exist"))
            return
        self.stack.respond(txn, build_response(request, 200))
        if invite.last_response is None or invite.last_response.status < 200:
            self.stack.respond(invite, build_response(invite.request, 487, "Request Terminated"))  # type: ignore[arg-type]

    # authentication ------------------------------------------------------------------------------

    def _authenticate(self, txn: ServerTransaction, request: Request, source: Target) -> SipAccount | None:
        """The account that signed this request, or None after answering it (challenge, 400 or 403)."""
        register = request.method == "REGISTER"
        if not register and self._trusted(source):
            return SipAccount(0, f"trusted:{source.host}", "", "", True)  # e.g. the trunk's own address
        header = "authorization" if register else "proxy-authorization"
        now = time.monotonic()
        credentials = self._our_credentials(request.get_all(header))
        if credentials is None:
            if request.get_all(header):
                self.stack.respond(txn, build_response(request, 400, "Bad Request - Malformed Credentials"))
            else:  # the first request of every registration: challenged statelessly (§26.3.2.4)
                self._challenge(txn, request, stale=False, stateless=request.method != "INVITE")
            return None
        result = self.digest.verify(request.method, credentials, self.accounts.secret_for, now)
        if result.outcome is AuthOutcome.OK and result.username is not None:
            account = self.accounts.get(result.username)
            if account is not None:
                self.guard.succeeded(source.host)
                return account
        if result.outcome is AuthOutcome.MALFORMED:
            self.stack.respond(txn, build_response(request, 400, "Bad Request - Malformed Credentials"))
            return None
        if result.outcome is AuthOutcome.STALE:
            self._challenge(txn, request, stale=True)
            return None
        # Wrong password and unknown user: one answer, and the source moves towards a ban.
        ban = self.guard.failed(source.host, now, credentials.username)
        log.warning(
            "SIP auth failed for %r from %s:%s",
            credentials.username,
            source.host,
            source.port,
            extra={"sip_method": request.method},
        )
        if ban is not None:
            return None  # banned now: no answer at all
        delay = self.guard.delay_for(source.host, now)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._challenge, txn, request, False)
        else:
            self._challenge(txn, request, stale=False)
        return None

    def _trusted(self, source: Target) -> bool:
        """A trusted source is named by address ("192.0.2.7") or by address and port ("192.0.2.7:5060")."""
        trusted = self.config.trusted_sources
        return source.host in trusted or f"{source.host}:{source.port}" in trusted

    def _our_credentials(self, values: list[str]) -> Credentials | None:
        for value in values:
            try:
                credentials = Credentials.parse(value)
            except DigestError:
                continue
            if credentials.realm == self.config.realm:
                return credentials
        return None

    def _challenge(self, txn: ServerTransaction, request: Request, stale: bool, stateless: bool = False) -> None:
        """401/407 with fresh nonces. Requests that carried no credentials at all are answered
        `stateless`: no transaction outlives the challenge (RFC 3261 §26.3.2.4). Wrong or stale
        credentials keep theirs, so a retransmission is not counted as another failed guess."""
        if txn.terminated:
            return
        register = request.method == "REGISTER"
        status, reason = (401, "Unauthorized") if register else (407, "Proxy Authentication Required")
        header = "WWW-Authenticate" if register else "Proxy-Authenticate"
        headers = [(header, c) for c in self.digest.challenge(time.monotonic(), stale=stale)]
        response = build_response(request, status, reason, to_tag=self._tag(), headers=headers)
        self.stack.respond(txn, response, stateless=stateless)

    def _on_ban(self, ban: Ban) -> None:
        log.warning(
            "SIP source %s banned for %.0fs after %d failed authentications",
            ban.source,
            ban.until - ban.since,
            ban.failures,
            extra={"sip_username": ban.last_username},
        )
        self._spawn(self._record_event(None, ban.last_username, "banned", ban.source, f"{ban.failures} failures"))

    async def _record_event(
        self, device_id: int | None, username: str | None, kind: str, source: str, detail: str
    ) -> None:
        if device_id is None and username is not None:
            account = self.accounts.get(username)
            device_id = account.id if account is not None else None
        async with self.db.writing() as s:
            s.add(SipEvent(device_id=device_id, username=username, kind=kind, source=source, detail=detail))
            await s.commit()

    # REGISTER ------------------------------------------------------------------------------------

    def _register(self, txn: ServerTransaction, request: Request, source: Target, account: SipAccount) -> None:
        to_uri = request.to.uri
        if not isinstance(to_uri, SipUri) or to_uri.user != account.username:
            # §10.3 step 3: an account registers its own AOR only.
            self.stack.respond(txn, build_response(request, 403, "Forbidden - Not Your Address of Record"))
            return
        pending = self.bindings.register(
            account.username,
            account.id,
            request,
            source_host=source.host,
            source_port=source.port,
            transport=source.transport.upper(),
            to_tag=self._tag(),
        )
        pending.add_done_callback(partial(self._registered, txn, request, account))

    def _registered(
        self, txn: ServerTransaction, request: Request, account: SipAccount, pending: asyncio.Future[RegisterOutcome]
    ) -> None:
        """The registrar's answer, once the binding is durable (or refused): the 200 goes out now."""
        if self._stopped or pending.cancelled():
            return
        error = pending.exception()
        if isinstance(error, RegistrarError):
            self.stack.respond(txn, build_response(request, error.status, error.reason, headers=error.headers))
        elif error is not None:  # the store refused the binding: no 200 for what is not durable
            log.error("registrar could not store the binding of %s", account.username, exc_info=error)
            if not txn.terminated:
                self.stack.respond(txn, build_response(request, 500, "Server Internal Error"))
        else:
            response = pending.result().response
            response.add("Date", self._date())
            self.stack.respond(txn, response)

    def _date(self) -> str:
        """The Date of a REGISTER's 200 (§10.3 step 8, §20.17), formatted once a second."""
        second = int(time.time())
        if second != self._date_second:
            self._date_second, self._date_text = second, formatdate(second, usegmt=True)
        return self._date_text

    # MESSAGE (RFC 3428) ---------------------------------------------------------------------------

    async def _relay_message(self, txn: ServerTransaction, request: Request, sender: SipAccount) -> None:
        if request.max_forwards == 0:  # §16.3 step 3: we forward, so we count hops
            self.stack.respond(txn, build_response(request, 483, "Too Many Hops"))
            return
        uri = request.uri
        user = uri.user if isinstance(uri, SipUri) else None
        if not user or self.accounts.get(user) is None:
            self.stack.respond(txn, build_response(request, 404, "Not Found"))
            return
        live = self.bindings.lookup(user)
        if not live:
            self.stack.respond(txn, build_response(request, 480, "Temporarily Unavailable"))
            return
        # RFC 3428 §7 with RFC 3261 §16.6: every contact of the AOR gets it at once. One may be a
        # phone that died without un-REGISTERing, next to the binding it made when it came back.
        pending = {self._spawn(self._forward_message(request, binding)) for binding in live}
        finals: list[tuple[int, str]] = []
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                status, reason = task.result()
                if 200 <= status < 300:  # §16.7 step 5: a 2xx goes back now, other branches end alone
                    self.stack.respond(txn, build_response(request, status, reason))
                    return
                finals.append((status, reason))
        status, reason = best_response(finals)
        self.stack.respond(txn, build_response(request, status, reason))

    async def _forward_message(self, request: Request, binding: Binding) -> tuple[int, str]:
        """One branch: the MESSAGE to one registered contact, over the flow it registered from."""
        target = Target(binding.transport, binding.source_host, binding.source_port)
        forwarded = Request(
            "MESSAGE",
            binding.contact,
            [
                ("Via", self.stack.via(binding.transport)),
                ("Max-Forwards", str((request.max_forwards or 70) - 1)),
                ("From", request.get("from") or ""),
                ("To", request.get("to") or ""),
                ("Call-ID", request.call_id),
                ("CSeq", str(request.cseq)),
                ("Content-Type", request.get("content-type") or "text/plain"),
                ("Content-Length", str(len(request.body))),
            ],
            request.body,
        )
        try:
            answer = await self.stack.request(forwarded, target)
        except RequestFailed as exc:  # §16.7 step 6 counts a branch timeout as a 408
            return (408, "Request Timeout") if exc.reason == "timeout" else (503, "Service Unavailable")
        return answer.status, answer.reason
