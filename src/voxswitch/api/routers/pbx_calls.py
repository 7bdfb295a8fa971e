"""pbx-api.md active calls: list and inspect live calls, hold and resume, transfer (blind or
attended, and cancelling one in progress), hang up. Each command acts on the real call: the phones
and the trunk see the re-INVITEs, REFERs, CANCELs and BYEs (engine/control.py says which).

Who may act: an administrator on every call; a user on calls of their own devices (the call's
`user_id`). A call that is not live here is 404; a command the call's state does not allow is 409.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from voxswitch.api.deps import CurrentUser, State
from voxswitch.api.pagination import Page, Paging
from voxswitch.api.surfaces import TAGS, Surface
from voxswitch.engine.control import CallControl, ControlError
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.identity import Principal

router = APIRouter(prefix="/api/calls", tags=[TAGS[Surface.PBX]])
CallId = Annotated[str, Path(alias="callID", max_length=64, description="The call's id")]


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hold: bool = True


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(min_length=1, max_length=200, description="A device, an E.164 number or a SIP URI")
    type: Literal["blind", "attended"] = "blind"


class Message(BaseModel):
    message: str


class ConferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    room: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


def _control(state: Any) -> CallControl:
    calls = state.engine.calls
    if calls is None:
        raise VoxError(ErrorKind.UNAVAILABLE, "SIP is not running on this server")
    return calls.control


def _visible(state: Any, principal: Principal, call_id: str) -> None:
    if principal.is_admin:
        return
    call = state.engine.calls.calls.get(call_id) if state.engine.calls is not None else None
    if call is None or call.user_id != principal.user.id:
        raise VoxError.not_found("Call")


def _raise(exc: ControlError) -> VoxError:
    if exc.kind == "not_found":
        return VoxError.not_found("Call" if "call" in str(exc) else "Transfer")
    if exc.kind == "invalid":
        return VoxError.invalid(exc.field or "target", str(exc))
    return VoxError(ErrorKind.CONFLICT, str(exc), [FieldProblem(exc.field, str(exc))] if exc.field else [])


@router.get("", response_model=Page[dict[str, Any]], summary="List active calls")
async def list_calls(state: State, principal: CurrentUser, paging: Paging) -> Page[dict[str, Any]]:
    calls = _control(state).live()
    if not principal.is_admin:
        mine = {c.id for c in state.engine.calls.calls.values() if c.user_id == principal.user.id}
        calls = [c for c in calls if c["id"] in mine]
    return Page.of(calls[paging.offset : paging.offset + paging.limit], len(calls), paging)


@router.get("/conferences", summary="Conference rooms in use and who is in them (Voxswitch extension)")
async def list_conferences(state: State, principal: CurrentUser) -> dict[str, Any]:
    rooms = _control(state).rooms()
    return {"data": rooms}


@router.get("/{callID}", summary="Get a live call")
async def get_call(state: State, principal: CurrentUser, call_id: CallId) -> dict[str, Any]:
    _visible(state, principal, call_id)
    try:
        return _control(state).get(call_id)
    except ControlError as exc:
        raise _raise(exc) from None


@router.post("/{callID}/hold", summary="Hold or resume a call")
async def hold_call(state: State, principal: CurrentUser, call_id: CallId, body: HoldIn) -> dict[str, Any]:
    _visible(state, principal, call_id)
    try:
        return await _control(state).hold(call_id, body.hold)
    except ControlError as exc:
        raise _raise(exc) from None


@router.post("/{callID}/transfer", status_code=202, summary="Transfer a call (blind or attended)")
async def transfer_call(state: State, principal: CurrentUser, call_id: CallId, body: TransferIn) -> dict[str, Any]:
    _visible(state, principal, call_id)
    try:
        return await _control(state).transfer(call_id, body.target.strip(), body.type)
    except ControlError as exc:
        raise _raise(exc) from None


@router.delete("/{callID}/transfer", summary="Cancel a transfer that has not completed")
async def cancel_transfer(state: State, principal: CurrentUser, call_id: CallId) -> dict[str, Any]:
    _visible(state, principal, call_id)
    try:
        return await _control(state).cancel_transfer(call_id)
    except ControlError as exc:
        raise _raise(exc) from None


@router.post("/{callID}/conference", summary="Move a call into a conference room (Voxswitch extension)")
async def conference_call(state: State, principal: CurrentUser, call_id: CallId, body: ConferenceIn) -> dict[str, Any]:
    _visible(state, principal, call_id)
    try:
        return _control(state).conference(call_id, body.room)
    except ControlError as exc:
        raise _raise(exc) from None


@router.delete("/{callID}", response_model=Message, summary="Hang up a call")
async def hangup_call(state: State, principal: CurrentUser, call_id: CallId) -> Message:
    _visible(state, principal, call_id)
    try:
        await _control(state).hangup(call_id)
    except ControlError as exc:
        raise _raise(exc) from None
    return Message(message="Call hung up")
