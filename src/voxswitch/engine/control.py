"""Live-call control from outside the call (the PBX API, the softphone API): list, hold and resume,
hang up, and blind or attended transfer.

Who is transferred. A call has two parties once bridged. The *transferee* stays on the call and is
put through to the target; the *transferor* leaves. The transferee is the party that is not one of
our devices when exactly one is (the outside caller of an inbound call, the outside callee of an
outbound one); otherwise the call's first leg (the caller).

Blind transfer. When the transferee is a device whose INVITE or 200 allowed REFER, it is sent a
REFER (RFC 3515) to call the target itself through us; when that call is up it ends this one.
Otherwise (a trunk, a phone without REFER) we transfer inside the B2BUA: ring the target, and when
it answers bridge it with the transferee and hang up the transferor.

Attended transfer (B2BUA). The transferee is held (re-INVITE sendonly, music on hold) while the
target is rung and, once it answers, talks with the transferor (consultation). When the
transferor hangs up, the transferee is put through to the target (the transfer completes); when
the target hangs up or refuses, or `cancel_transfer` is called before completion, the transferee
is taken off hold and talks with the transferor again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from voxswitch.engine.bridge import Bridge
from voxswitch.engine.call import Call, CallState
from voxswitch.engine.conference import Conference, RoomSeat
from voxswitch.engine.dial import ring
from voxswitch.engine.leg import Ended, Leg, LegEvent
from voxswitch.engine.sip_leg import SipLeg
from voxswitch.engine.targets import CallerId, TargetError
from voxswitch.media.player import Player

if TYPE_CHECKING:
    from voxswitch.engine.calls import CallManager

log = logging.getLogger(__name__)


class ControlError(Exception):
    """A command that cannot act on this call; `kind` says why (not_found, conflict, invalid)."""

    def __init__(self, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.field = field


class TransferState(StrEnum):
    RINGING = "ringing"  # the target is being rung
    CONSULTING = "consulting"  # attended: the transferor talks with the target
    REFERRED = "referred"  # blind by REFER: the transferee places the call
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Transfer:
    kind: str  # "blind" or "attended"
    target: str
    transferee: Leg
    transferor: Leg
    state: TransferState = TransferState.RINGING
    method: str = "b2bua"  # or "refer"
    detail: str = ""
    consult: Leg | None = None
    ringing: list[Leg] = field(default_factory=list, repr=False)
    cancel: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    moh: Player | None = field(default=None, repr=False)
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in (TransferState.RINGING, TransferState.CONSULTING, TransferState.REFERRED)

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "target": self.target, "state": self.state.value, "method": self.method,
                "detail": self.detail}  # fmt: skip


class CallControl:
    def __init__(self, manager: CallManager) -> None:
        self.manager = manager
        self.transfers: dict[str, Transfer] = {}
        self.phones = PhoneTransfers(self)

    def _call(self, call_id: str) -> Call:
        call = self.manager.calls.get(call_id)
        if call is None or call.state.final:
            raise ControlError("not_found", f"no live call {call_id}")
        return call

    def _bridge(self, call: Call) -> Bridge:
        bridge = self.manager.bridges.get(call.id)
        if not isinstance(bridge, Bridge) or bridge.done.is_set():
            raise ControlError("conflict", "the call is not connected to another party")
        return bridge

    # listing ------------------------------------------------------------------------------------

    def snapshot(self, call: Call) -> dict[str, Any]:
        transfer = self.transfers.get(call.id)
        return {
            "id": call.id,
            "direction": call.direction,
            "status": call.state.value,
            "from": call.from_number,
            "to": call.to_number,
            "did": call.did,
            "app": call.app,
            "answered_by": call.answered_by,
            "created_at": call.created_at.isoformat(),
            "answered_at": call.answered_at.isoformat() if call.answered_at else None,
            "duration": call.duration_seconds,
            "on_hold": call.state is CallState.ON_HOLD,
            "legs": [_leg_view(leg) for leg in call.legs],
            "transfer": transfer.describe() if transfer is not None else None,
        }

    def live(self) -> list[dict[str, Any]]:
        calls = sorted(self.manager.calls.values(), key=lambda c: c.created_at)
        return [self.snapshot(c) for c in calls if not c.state.final]

    def get(self, call_id: str) -> dict[str, Any]:
        return self.snapshot(self._call(call_id))

    # hold and hang-up ---------------------------------------------------------------------------

    async def hold(self, call_id: str, hold: bool) -> dict[str, Any]:
        """Hold: both parties are re-offered sendonly and hear music on hold; resume reconnects them."""
        call = self._call(call_id)
        bridge = self._bridge(call)
        if hold == (call.state is CallState.ON_HOLD):
            return self.snapshot(call)
        if call.state not in (CallState.IN_PROGRESS, CallState.ON_HOLD):
            raise ControlError("conflict", f"a call that is {call.state.value} cannot be held")
        for leg in (bridge.a, bridge.b):
            if hold:
                await bridge.hold(leg)
            else:
                await bridge.resume(leg)
        await call.move(CallState.ON_HOLD if hold else CallState.IN_PROGRESS)
        return self.snapshot(call)

    def conference(self, call_id: str, room: str) -> dict[str, Any]:
        """Move a live call's parties into conference `room` (made if new): each hears everyone there,
        and stays until it hangs up."""
        call = self._call(call_id)
        if not room or len(room) > 64:
            raise ControlError("invalid", "room must be 1-64 characters", "room")
        legs = [leg for leg in call.legs if leg.is_answered and not leg.ended.is_set()]
        if not legs:
            raise ControlError("conflict", "the call has no answered party to move")
        transfer = self.transfers.get(call.id)
        if transfer is not None and transfer.active:
            raise ControlError("conflict", "a transfer of this call is in progress")
        conference = self.manager.rooms.get(room)
        if conference is None:
            conference = self.manager.rooms[room] = Conference(room, self.manager.media.clock)
        seat = RoomSeat(conference, legs)
        old = self.manager.bridges.get(call.id)
        self.manager.bridges[call.id] = seat  # the app follows it as it follows a bridge
        if isinstance(old, Bridge):
            old.detach()
        self.manager.spawn(self.manager._unlist_bridge(call.id, seat))
        self.manager.spawn(self._close_room_when_empty(room, conference, seat))
        return self.snapshot(call)

    async def _close_room_when_empty(self, name: str, room: Conference, seat: RoomSeat) -> None:
        await seat.done.wait()
        if not room.members and self.manager.rooms.get(name) is room:
            del self.manager.rooms[name]

    def rooms(self) -> list[dict[str, Any]]:
        return [
            {"room": name, "members": [{"peer": leg.peer, "call_id": leg.call_id} for leg in room.members]}
            for name, room in sorted(self.manager.rooms.items())
        ]

    async def hangup(self, call_id: str) -> None:
        self._call(call_id)
        await self.manager.hangup(call_id, "hung up by API")

    # transfer -----------------------------------------------------------------------------------

    def _parties(self, bridge: Bridge, call: Call) -> tuple[Leg, Leg]:
        a, b = bridge.a, bridge.b
        if (a.party == "device") != (b.party == "device"):
            return (b, a) if a.party == "device" else (a, b)
        first = call.legs[0] if call.legs and call.legs[0] in (a, b) else a
        return first, bridge.other(first)

    async def transfer(self, call_id: str, target: str, kind: str = "blind") -> dict[str, Any]:
        call = self._call(call_id)
        if kind not in ("blind", "attended"):
            raise ControlError("invalid", "type must be blind or attended", "type")
        if not target or not target.strip():
            raise ControlError("invalid", "target is required", "target")
        existing = self.transfers.get(call.id)
        if existing is not None and existing.active:
            raise ControlError("conflict", "a transfer of this call is already in progress")
        bridge = self._bridge(call)
        transferee, transferor = self._parties(bridge, call)
        caller = CallerId(call.from_number if transferee is call.legs[0] else call.to_number)
        try:
            destinations = await self.manager.targets.resolve(target, caller)
        except TargetError as exc:
            raise ControlError("invalid", str(exc), "target") from None
        transfer = Transfer(kind, target, transferee, transferor)
        self.transfers[call.id] = transfer
        if (
            kind == "blind"
            and isinstance(transferee, SipLeg)
            and transferee.party == "device"
            and ("REFER" in transferee.peer_allows)
        ):
            transfer.method = "refer"
            transfer.task = self.manager.spawn(self._refer(call, transfer, destinations[0].request_uri, target))
        else:
            legs = [self.manager.outbound_leg(d, prefer=transferee) for d in destinations]
            transfer.ringing = list(legs)
            work = (
                self._blind(call, bridge, transfer, legs)
                if kind == "blind"
                else self._attended(call, bridge, transfer, legs)
            )
            transfer.task = self.manager.spawn(work)
        return transfer.describe()

    async def _refer(self, call: Call, transfer: Transfer, uri: str, target: str) -> None:
        transferee = transfer.transferee
        assert isinstance(transferee, SipLeg)
        # the phone calls the target through us, where its own calls go: our address on its transport
        refer_to = (
            uri
            if target.lower().startswith("sip")
            else transferee.contact().strip("<>").replace(f"sip:{transferee.local_user}@", f"sip:{target}@", 1)
        )
        try:
            if not await transferee.refer(refer_to):
                transfer.state = TransferState.FAILED
                transfer.detail = "REFER refused"
                return
            transfer.state = TransferState.REFERRED
            transfer.detail = "REFER accepted; the transferee places the call"
            assert transferee.refer_outcome is not None
            try:
                status, reason = await asyncio.wait_for(transferee.refer_outcome, self.manager.ring_timeout + 10)
            except TimeoutError:
                status, reason = 408, "no final NOTIFY"
            if not 200 <= status < 300:
                transfer.state = TransferState.FAILED
                transfer.detail = f"the transferee's call failed: {status} {reason}"
                return
            # RFC 5589 §6.1: the new call is up, so the transferor (us) ends the old dialog
            transfer.state = TransferState.COMPLETED
            call.data["transferred_to"] = target
            await transferee.hangup("transferred")
        finally:
            transfer.done.set()

    async def _ring_target(self, transfer: Transfer, legs: list[Any]) -> Leg | None:
        gave_up = asyncio.Event()  # the transferee hung up, or the transfer was cancelled

        def stop(*_: object) -> None:
            gave_up.set()

        transfer.transferee.listeners.append(lambda leg, event: stop() if isinstance(event, Ended) else None)
        waiter = asyncio.ensure_future(transfer.cancel.wait())
        waiter.add_done_callback(stop)
        try:
            attempt = await ring(legs, self.manager.ring_timeout, gave_up=gave_up)
        finally:
            waiter.cancel()
            transfer.ringing = []
        if attempt.leg is None:
            transfer.state = TransferState.FAILED
            transfer.detail = f"target {attempt.outcome}: {attempt.cause}"
            return None
        return attempt.leg

    def _rebridge(self, call: Call, old: Bridge | None, a: Leg, b: Leg, *, hang_up_other: bool = True) -> Bridge:
        """Put `a` and `b` through to each other in place of `old` (the app follows the new bridge)."""
        new = Bridge(a, b, music=self.manager.music, hang_up_other=hang_up_other)
        self.manager.bridges[call.id] = new
        if old is not None:
            old.detach()
        new.start()
        self.manager.spawn(self.manager._unlist_bridge(call.id, new))
        for leg in (a, b):  # a party the old bridge had put on hold talks again
            if leg.local_hold and not leg.ended.is_set():
                self.manager.spawn(leg.resume())
        if call.state is CallState.ON_HOLD:
            self.manager.spawn(call.move(CallState.IN_PROGRESS))
        return new

    async def _blind(self, call: Call, bridge: Bridge, transfer: Transfer, legs: list[Any]) -> None:
        try:
            leg = await self._ring_target(transfer, legs)
            if leg is None or transfer.state is TransferState.CANCELLED:
                if leg is not None:
                    await leg.hangup("transfer cancelled")
                return
            self.manager.adopt(call, leg)
            self._rebridge(call, bridge, transfer.transferee, leg)
            call.answered_by = leg.peer
            await transfer.transferor.hangup("transferred")
            transfer.state = TransferState.COMPLETED
            call.data["transferred_to"] = transfer.target
        finally:
            transfer.done.set()

    async def _attended(self, call: Call, bridge: Bridge, transfer: Transfer, legs: list[Any]) -> None:
        transferee, transferor = transfer.transferee, transfer.transferor
        # the transferee waits on hold with music; the transferor stays, free to talk to the target
        holding = Bridge(transferee, transferor, music=self.manager.music, hang_up_other=False)
        self.manager.bridges[call.id] = holding
        bridge.detach()
        with contextlib.suppress(Exception):
            await transferee.hold()
        transfer.moh = transferee.media.play(self.manager.music())
        consult: Bridge | None = None
        try:
            leg = await self._ring_target(transfer, legs)
            if leg is None or transfer.state is TransferState.CANCELLED or transferee.ended.is_set():
                if leg is not None:
                    await leg.hangup("transfer cancelled")
                await self._back_together(call, holding, transfer)
                return
            transfer.consult = leg
            self.manager.adopt(call, leg)
            transfer.state = TransferState.CONSULTING
            consult = Bridge(transferor, leg, music=self.manager.music, hang_up_other=False)
            consult.start()
            outcome = await self._until_one_ends(transfer, transferor, leg)
            consult.detach()
            if outcome == "completed":
                self._stop_music(transfer)
                await transferee.resume()
                self._rebridge(call, holding, transferee, leg)
                call.answered_by = leg.peer
                transfer.state = TransferState.COMPLETED
                call.data["transferred_to"] = transfer.target
            else:
                if not leg.ended.is_set():
                    await leg.hangup("transfer cancelled")
                await self._back_together(call, holding, transfer)
        finally:
            self._stop_music(transfer)
            transfer.done.set()

    async def _until_one_ends(self, transfer: Transfer, transferor: Leg, target: Leg) -> str:
        """'completed' when the transferor hangs up first, 'back' when the target does or on cancel."""
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def watch(leg: Leg, event: LegEvent) -> None:
            if isinstance(event, Ended) and not ended.done():
                ended.set_result("completed" if leg is transferor else "back")

        for leg in (transferor, target):
            leg.listeners.append(watch)
        cancelled = asyncio.ensure_future(transfer.cancel.wait())
        try:
            await asyncio.wait({ended, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
            for leg in (transferor, target):
                if watch in leg.listeners:
                    leg.listeners.remove(watch)
        return ended.result() if ended.done() else "back"

    async def _back_together(self, call: Call, holding: Bridge, transfer: Transfer) -> None:
        self._stop_music(transfer)
        transferee, transferor = transfer.transferee, transfer.transferor
        if transfer.state is not TransferState.CANCELLED:
            transfer.state = TransferState.FAILED if transfer.state is not TransferState.COMPLETED else transfer.state
        if transferee.ended.is_set() or transferor.ended.is_set():
            holding.detach()
            for leg in (transferee, transferor):
                if not leg.ended.is_set():
                    await leg.hangup("transfer failed")
            return
        with contextlib.suppress(Exception):
            await transferee.resume()
        self._rebridge(call, holding, transferee, transferor)

    def _stop_music(self, transfer: Transfer) -> None:
        if transfer.moh is not None:
            transfer.moh.stop()
            transfer.moh = None

    async def cancel_transfer(self, call_id: str) -> dict[str, Any]:
        """Stop a transfer that has not completed: ringing stops, a consultation ends, and the parties
        talk again as before."""
        call = self._call(call_id)
        transfer = self.transfers.get(call.id)
        if transfer is None or not transfer.active:
            raise ControlError("not_found", "no transfer in progress for this call")
        if transfer.method == "refer":
            raise ControlError("conflict", "a transfer handed to the phone by REFER cannot be cancelled")
        transfer.state = TransferState.CANCELLED
        transfer.detail = "cancelled by API"
        transfer.cancel.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(transfer.done.wait(), 10)
        return transfer.describe()


# --- transfers a phone starts (it sends us REFER) ---------------------------------------------------


class PhoneTransfers:
    """A phone in a call through us presses transfer: it sends REFER in its dialog with us.

    Blind (RFC 3515, RFC 5589 §6): Refer-To names the target. We answer 202, report progress as
    NOTIFYs with sipfrag bodies, ring the target and, when it answers, put the phone's partner (the
    transferee) through to it; the final NOTIFY says 200 and the phone hangs up its side.
    Attended (RFC 5589 §7, RFC 3891): the phone first called the target through us (a second call);
    its Refer-To carries `Replaces` naming its dialog with us in that second call. We put the two far
    parties through to each other and hang up the phone's two legs.
    """

    def __init__(self, control: CallControl) -> None:
        self.control = control
        self.manager = control.manager

    async def on_refer(self, leg: SipLeg, txn: Any, request: Any) -> None:
        from voxswitch.sip.dialog import DialogError, DialogId, parse_replaces
        from voxswitch.sip.errors import SipParseError
        from voxswitch.sip.headers import parse_name_addr
        from voxswitch.sip.message import build_response
        from voxswitch.sip.uri import SipUri

        stack = self.manager.stack
        values = request.get_all("refer-to")
        try:
            if len(values) != 1:
                raise SipParseError(400, "Bad Request - Exactly One Refer-To")
            target_uri = parse_name_addr(values[0], "Refer-To").uri
        except SipParseError as exc:
            stack.respond(txn, build_response(request, 400, exc.reason))
            return
        call = self.manager.calls.get(leg.call_id or "")
        bridge = self.manager.bridges.get(call.id) if call is not None else None
        if call is None or not isinstance(bridge, Bridge) or not isinstance(target_uri, SipUri):
            stack.respond(txn, build_response(request, 488 if call is not None else 481))
            return
        replaces = next((v for k, v in target_uri.headers if k.lower() == "replaces"), None)
        stack.respond(txn, build_response(request, 202, "Accepted", headers=[("Contact", leg.contact())]))
        await self._notify(leg, 100, "Trying", final=False)
        transferee = bridge.other(leg)
        if replaces is not None:
            try:
                replaced = parse_replaces(replaces)
            except DialogError:
                await self._notify(leg, 400, "Bad Replaces", final=True)
                return
            status = await self._attended(call, bridge, leg, transferee, DialogId(*replaced))
        else:
            status = await self._blind(call, bridge, leg, transferee, target_uri.user or "")
        await self._notify(leg, status, "OK" if status == 200 else "Failed", final=True)
        if status == 200:  # RFC 5589: the phone now hangs up; if it does not, we do
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(leg.ended.wait(), 5)
            await leg.hangup("transferred")

    async def _notify(self, leg: SipLeg, status: int, reason: str, *, final: bool) -> None:
        from voxswitch.sip.stack import RequestFailed
        from voxswitch.sip.subscription import sipfrag

        dialog = leg.dialog
        if dialog is None or dialog.terminated:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        request = dialog.notify(
            leg.stack.via(leg.target.transport), "refer", state, sipfrag(status, reason), "message/sipfrag;version=2.0"
        )
        try:
            await leg.stack.request(request, leg.target)
        except RequestFailed:
            pass

    async def _blind(self, call: Call, bridge: Bridge, phone: Leg, transferee: Leg, target: str) -> int:
        caller = CallerId(transferee.peer)
        try:
            destinations = await self.manager.targets.resolve(target, caller)
        except TargetError as exc:
            return exc.status
        legs = [self.manager.outbound_leg(d, prefer=transferee) for d in destinations]
        transfer = Transfer("blind", target, transferee, phone)
        self.control.transfers[call.id] = transfer
        leg = await self.control._ring_target(transfer, legs)
        transfer.done.set()
        if leg is None:
            return 480
        self.manager.adopt(call, leg)
        self.control._rebridge(call, bridge, transferee, leg)
        call.answered_by = leg.peer
        transfer.state = TransferState.COMPLETED
        call.data["transferred_to"] = target
        return 200

    async def _attended(self, call: Call, bridge: Bridge, phone: Leg, transferee: Leg, replaced: Any) -> int:
        other_dialog = self.manager.sip.dialogs.get(replaced)
        consult_leg = other_dialog.user_data if other_dialog is not None else None
        other_call = self.manager.calls.get(getattr(consult_leg, "call_id", None) or "")
        other_bridge = self.manager.bridges.get(other_call.id) if other_call is not None else None
        if consult_leg is None or other_call is None or not isinstance(other_bridge, Bridge):
            return 481
        target = other_bridge.other(consult_leg)  # the party the phone consulted
        other_bridge.detach()
        if target in other_call.legs:  # it now belongs to this call
            other_call.legs.remove(target)
        self.manager.adopt(call, target)
        target.call_id = call.id
        self.control._rebridge(call, bridge, transferee, target)
        call.answered_by = target.peer
        call.data["transferred_to"] = target.peer
        await consult_leg.hangup("transferred")
        return 200


def _leg_view(leg: Leg) -> dict[str, Any]:
    terms = leg.media.terms
    return {
        "peer": leg.peer,
        "party": leg.party,
        "direction": leg.direction,
        "state": leg.state.value,
        "codec": f"{terms.codec}/{terms.clock_rate}" if terms is not None else None,
        "on_hold": leg.local_hold or leg.remote_hold,
        "muted": leg.media.endpoint.muted,
        "packets_in": leg.media.endpoint.packets_in,
        "packets_out": leg.media.endpoint.packets_out,
    }
