"""Commands: ``POST /devices/{id}/commands``, ``GET /commands/{id}``, ``POST /commands/{id}/cancel``.

Every command is stored (``SQLCommandStore`` on the service's database) before it is
published, so any replica answers for it and a restart does not lose it.
"""

from datetime import UTC, datetime
from typing import Annotated

from energy_auth import Principal
from energy_auth.fastapi import require_permission
from energy_common.apidocs import error_responses
from energy_common.responses import APIResponse
from energy_messaging.devices import Command, command_result
from energy_messaging.errors import CommandFailedError
from fastapi import APIRouter, Depends, Header, Path, Response
from fastapi import status as http_status

from meter_service._errors import CLIENT_COMMAND_ERRORS, CommandRejectedError
from meter_service._routes_devices import DeviceId
from meter_service._runtime import MeterRuntime
from meter_service._schemas import CommandOut, CommandRequest, CommandTransition
from meter_service._security import get_runtime, limited_permission
from meter_service._settings import MeterSettings

__all__ = ["command_out", "commands_router"]

Runtime = Annotated[MeterRuntime, Depends(get_runtime)]
#: A command id: 32 hex characters (an unknown or malformed one is a 404 / 422).
CommandId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
#: A client's retry key: the same key (for the same meter) returns the first command.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", pattern=r"^[\x21-\x7e]{1,128}$", description="Retry-safe key (1-128 visible ASCII)."
    ),
]


def command_out(cmd: Command) -> CommandOut:
    """The API form of a stored command."""
    return CommandOut(
        command_id=cmd.command_id,
        device_id=cmd.device_id,
        command=cmd.command,
        state=cmd.state,
        result=cmd.result,
        error=cmd.error,
        late_reply=cmd.late_reply,
        history=[CommandTransition(state=state, at=datetime.fromtimestamp(at, UTC)) for state, at in cmd.history],
    )


def commands_router(settings: MeterSettings) -> APIRouter:
    """Build the commands router with the configured rate limit."""
    router = APIRouter(tags=["commands"], responses=error_responses(401, 403))
    send = limited_permission(
        "commands:send", limit=settings.command_rate_limit, window=settings.rate_limit_window, name="commands"
    )

    @router.post(
        "/devices/{device_id}/commands",
        responses={
            **error_responses(400, 404, 409, 413, 429, 502, 503, 504),
            202: {
                "model": APIResponse[CommandOut],
                "description": "Accepted (``wait`` false): the stored command, to follow at ``Location``.",
                "headers": {"Location": {"description": "/api/v1/commands/{command_id}", "schema": {"type": "string"}}},
            },
        },
    )
    async def send_command(
        device_id: DeviceId,
        body: CommandRequest,
        runtime: Runtime,
        response: Response,
        _user: Annotated[Principal, Depends(send)],
        idempotency_key: IdempotencyKey = None,
    ) -> APIResponse[CommandOut]:
        """Send a command to a meter over MQTT.

        With ``wait`` (the default) the answer is the meter's reply: 422 ``COMMAND_REJECTED``
        when the meter refuses the command as wrong (its own code, e.g. ``UNKNOWN_COMMAND``,
        in ``error.details.error.code``), 502 ``COMMAND_FAILED`` when it fails to carry it out,
        504 ``COMMAND_TIMEOUT`` when it does not answer. With ``wait: false`` it is 202 at once
        with the command id (``GET /commands/{id}`` follows it). ``Idempotency-Key``: a retry
        with the same key returns the first command instead of sending a second one; 429
        ``COMMAND_LIMIT_REACHED`` when the meter has too many commands in flight.
        """
        cmd = await runtime.devices.submit_command(
            device_id,
            body.command,
            body.params,
            timeout=body.timeout,
            deliver_when_online=body.deliver_when_online,
            expires_in=body.expires_in,
            idempotency_key=idempotency_key,
        )
        if not body.wait:
            response.status_code = http_status.HTTP_202_ACCEPTED
            response.headers["Location"] = f"/api/v1/commands/{cmd.command_id}"
            return APIResponse.success(command_out(cmd), message="Command accepted")
        finished = await runtime.devices.wait_command(cmd.command_id)
        try:
            command_result(finished)
        except CommandFailedError as exc:
            device_error = exc.details.get("error")
            code = device_error.get("code") if isinstance(device_error, dict) else None
            if code not in CLIENT_COMMAND_ERRORS:
                raise
            raise CommandRejectedError(
                f"Meter '{device_id}' rejected {body.command!r} ({code}): check the command name and its params.",
                exc.details,
            ) from exc
        return APIResponse.success(command_out(finished))

    @router.get("/commands/{command_id}", responses=error_responses(404))
    async def get_command(
        command_id: CommandId,
        runtime: Runtime,
        _reader: Annotated[Principal, Depends(require_permission("devices:read"))],
    ) -> APIResponse[CommandOut]:
        """A command's state and history, from any replica."""
        return APIResponse.success(command_out(await runtime.devices.get_command(command_id)))

    @router.post("/commands/{command_id}/cancel", responses=error_responses(400, 404, 409, 413, 429))
    async def cancel_command(
        command_id: CommandId, runtime: Runtime, _user: Annotated[Principal, Depends(send)]
    ) -> APIResponse[CommandOut]:
        """Cancel a queued command (409 ``COMMAND_NOT_CANCELLABLE`` once it was sent or finished)."""
        return APIResponse.success(command_out(await runtime.devices.cancel_command(command_id)))

    return router
