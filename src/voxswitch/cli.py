"""The `voxswitch` command: run the server and administer it from a shell."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from voxswitch import __version__
from voxswitch.api.state import AppState
from voxswitch.config import load_settings
from voxswitch.errors import VoxError

FINAL_STATUSES = frozenset({"completed", "failed", "busy", "no_answer"})

app = typer.Typer(help="Voxswitch: a self-hosted voice platform.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys for machine clients.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)
device_app = typer.Typer(help="Manage SIP devices (accounts on the registrar).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(config_app, name="config")
app.add_typer(device_app, name="device")
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def _run(work: Callable[[AppState], Awaitable[T]]) -> T:
    """Run one administrative coroutine against a migrated store, reporting errors plainly."""
    from voxswitch.store.migrate import upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> T:
        state = AppState.build(settings)
        try:
            await upgrade(state.db)
            return await work(state)
        finally:
            state.voice.store.close()
            await state.db.dispose()

    try:
        return asyncio.run(main())
    except VoxError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        for p in exc.problems:
            err_console.print(f"  {p.field}: {p.message}")
        raise typer.Exit(2) from None


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="HTTP bind address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
) -> None:
    """Run HTTP (and, as they land, SIP, RTP and jobs) in one process on the embedded defaults."""
    import uvicorn

    from voxswitch.api.app import create_app

    overrides = {k: v for k, v in (("http_host", host), ("http_port", port)) if v is not None}
    settings = load_settings(**overrides)
    console.print(
        f"[bold]Voxswitch {__version__}[/bold] on http://{settings.http_host}:{settings.http_port} "
        f"(data in {settings.data_dir})"
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        loop="uvloop",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        ws="websockets-sansio",
    )
    uvicorn.Server(config).run()


@app.command("call")
def place_call(
    to: Annotated[str, typer.Argument(help="E.164 number, or a registered device's extension")],
    text: Annotated[str, typer.Option("--text", "-t", help="What is said when the callee answers")],
    from_number: Annotated[str | None, typer.Option("--from", help="Caller id (VOXSWITCH_VOICE_DEFAULT_FROM)")] = None,
    voice: Annotated[str | None, typer.Option(help="TTS voice")] = None,
    language: Annotated[str | None, typer.Option(help="TTS language, e.g. en-US")] = None,
    repeat: Annotated[int, typer.Option(help="Say it this many times")] = 1,
    record: Annotated[bool, typer.Option("--record", help="Record what the callee says")] = False,
    status_callback: Annotated[str | None, typer.Option("--status-callback", help="Webhook URL")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the call ends")] = False,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 600.0,
) -> None:
    """Queue a text-to-speech call, as POST /voice/call does; a running `voxswitch serve` places it."""
    import time

    from rich.live import Live
    from rich.spinner import Spinner

    settings = load_settings()
    data: dict[str, object] = {
        "ToNumber": to,
        "FromNumber": from_number or settings.voice_default_from,
        "Text": text,
        "Voice": voice,
        "Language": language,
        "Repeat": repeat,
        "Record": record,
        "StatusCallback": status_callback,
    }

    async def work(state: AppState) -> tuple[str, dict[str, object] | None]:
        accepted = await state.voice.place(data)
        err_console.print(
            f"queued call [bold]{accepted.call_id}[/bold] to {accepted.to_number} "
            f"(estimated {accepted.estimated_processing_time})"
        )
        if not wait:
            return accepted.call_id, None
        started = time.monotonic()
        view = await state.voice.status(accepted.call_id)
        spinner = Spinner("dots", text=f"{view['status']}")
        with Live(spinner, console=err_console, refresh_per_second=8, transient=True):
            while view["status"] not in FINAL_STATUSES and time.monotonic() - started < timeout:
                await asyncio.sleep(0.25)
                view = await state.voice.status(accepted.call_id)
                elapsed = time.monotonic() - started
                spinner.update(text=f"{view['status']}  {elapsed:5.1f} s  attempt {view['attempts']}")
        return accepted.call_id, view

    call_id, view = _run(work)
    if view is None:
        print(call_id)
        return
    status = str(view["status"])
    line = f"{call_id} {status}"
    if view.get("duration") is not None:
        line += f" after {view['duration']} s"
    if view.get("error_message"):
        line += f": {view['error_message']}"
    print(line)
    if status not in FINAL_STATUSES:
        err_console.print(f"[yellow]still {status} after {timeout:g} s; is `voxswitch serve` running?[/yellow]")
        raise typer.Exit(3)
    raise typer.Exit(0 if status == "completed" else 1)


@app.command()
def migrate() -> None:
    """Apply database migrations (the server also does this at start)."""
    from voxswitch.store.migrate import current_revision

    async def work(state: AppState) -> str:
        return await current_revision(state.db) or "none"

    console.print(f"database at revision [bold]{_run(work)}[/bold]")


@user_app.command("create")
def user_create(
    email: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    role: Annotated[str, typer.Option(help="admin or user")] = "user",
    name: Annotated[str, typer.Option(help="Display name")] = "",
    can_call: Annotated[bool | None, typer.Option("--can-call/--no-can-call")] = None,
) -> None:
    """Create a user (the password is prompted for unless given with --password)."""

    async def work(state: AppState):
        return await state.identity.create_user(email, password, role=role, display_name=name, can_call=can_call)

    user = _run(work)
    console.print(f"created {user.role} [bold]{user.email}[/bold] (id {user.id})")


@user_app.command("list")
def user_list() -> None:
    """List users."""

    async def work(state: AppState):
        return await state.identity.list_users(limit=1000, offset=0)

    users, total = _run(work)
    table = Table("id", "email", "role", "can_call", "active")
    for u in users:
        table.add_row(u.id, u.email, u.role, str(u.can_call), str(u.is_active))
    console.print(table)
    console.print(f"{total} user(s)")


@apikey_app.command("create")
def apikey_create(
    email: Annotated[str, typer.Argument(help="The user the key acts as")],
    name: Annotated[str, typer.Option(help="What the key is for")] = "default",
) -> None:
    """Create an API key; it is printed once and only its hash is kept."""

    async def work(state: AppState):
        user = await state.identity.find_by_email(email)
        if user is None:
            raise VoxError.not_found(f"User {email}")
        return await state.identity.create_api_key(user.id, name)

    created = _run(work)
    err_console.print(f"API key [bold]{created.key.name}[/bold] (id {created.key.id}) - shown once, keep it safe:")
    print(created.secret)


@device_app.command("add")
def device_add(
    username: Annotated[str, typer.Argument(help="SIP username, e.g. an extension like 1001")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option(help="A name people recognise")] = "",
    device_type: Annotated[str, typer.Option("--type", help="Vendor or kind, e.g. grandstream")] = "generic",
) -> None:
    """Create a SIP account; only its digest hashes are stored."""

    async def work(state: AppState):
        return await state.devices.create(
            name=name or f"Device {username}", username=username, password=password, type=device_type
        )

    device = _run(work)
    console.print(f"created device [bold]{device.username}[/bold] (id {device.id}, realm {device.realm})")


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Show the effective configuration with every secret masked."""
    masked = load_settings().masked()
    if as_json:
        print(json.dumps(masked, indent=2, default=str))
        return
    table = Table("setting", "value")
    for key, value in sorted(masked.items()):
        table.add_row(key, str(value))
    console.print(table)
