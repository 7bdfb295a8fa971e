"""The apps Voxswitch ships: the ones a phone can dial by name, and `connect`, which routes use to
put a caller through to a device, a ring group or a number."""

from __future__ import annotations

import logging

from voxswitch.engine.apps import CallContext, app

log = logging.getLogger(__name__)


@app("hello")
async def hello(ctx: CallContext) -> None:
    """Says a sentence and hangs up: the smallest useful app, and the one the docs show."""
    await ctx.say("Hello from Voxswitch. This call is working.")
    await ctx.hangup()


@app("conference")
async def conference_room(ctx: CallContext) -> None:
    """Everyone who dials `conference` is in one room and hears the others."""
    await ctx.conference(str(ctx.params.get("room", "default")))


@app("digits")
async def read_back_digits(ctx: CallContext) -> None:
    """Asks for digits, keeps them on the call, reads them back: DTMF in and speech out."""
    entered = await ctx.gather(digits=12, timeout=6.0, prompt="Please enter your code, then press the pound key.")
    ctx.call.data["digits"] = entered
    log.info("caller entered digits", extra={"call_id": ctx.call.id, "digits": entered})
    await ctx.say(f"You entered {' '.join(entered) or 'nothing'}.")
    await ctx.hangup()


async def connect(ctx: CallContext) -> None:
    """Put the caller through to `params["target"]` (a device, a list of them, a number, a URI).
    Not in the registry: routes choose it, a phone cannot dial it by name."""
    timeout = ctx.params.get("timeout")
    await ctx.dial(
        ctx.params["target"],
        timeout=float(timeout) if timeout is not None else None,
        caller_id=ctx.params.get("caller_id"),
    )


async def speak(ctx: CallContext) -> None:
    """Say `params["text"]` (`voice`, `language`, `repeat` times, a second apart) and hang up: the
    voice-call API's call. Not in the registry, for the same reason as `connect`."""
    text = str(ctx.params["text"])
    repeat = max(1, int(ctx.params.get("repeat", 1)))
    for i in range(repeat):
        if i:
            await ctx.pause(1.0)
        await ctx.say(text, voice=ctx.params.get("voice"), language=ctx.params.get("language"))
    await ctx.hangup("spoken")
