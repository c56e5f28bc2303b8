"""``/api/v1/devices``: register, list, get, status, delete (commands: ``_routes_commands``)."""

from typing import Annotated, Any

from energy_auth import Principal
from energy_auth.devices import validate_device_id
from energy_auth.fastapi import require_permission
from energy_common.apidocs import error_responses
from energy_common.responses import APIResponse, PaginatedResponse
from energy_messaging.devices import Device, DeviceState
from fastapi import APIRouter, Depends, Path, Query
from fastapi import status as http_status

from meter_service._ingest import latest_key
from meter_service._runtime import MeterRuntime
from meter_service._schemas import DeviceCredentialsOut, DeviceIn, DeviceOut, DeviceRegistered, ReadingOut
from meter_service._security import get_runtime, limited_permission
from meter_service._settings import MeterSettings

__all__ = ["DeviceId", "KnownDevice", "devices_router", "known_device"]

#: A device id in a path: a single MQTT topic level, no wildcards.
DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")]
Runtime = Annotated[MeterRuntime, Depends(get_runtime)]
_read = Depends(require_permission("devices:read"))
_ON_DEVICE = error_responses(404)


async def known_device(device_id: DeviceId, runtime: Runtime, _reader: Annotated[Principal, _read]) -> Device:
    """The registered device named by the path, for a caller with ``devices:read`` (a dependency).

    The permission comes first, so a caller without it gets 401/403 and never learns which
    devices exist. The readings routes get it from ``create_app`` (``include_router``).

    Raises:
        ResourceNotFoundError: No such device (404, as for ``GET /devices/{device_id}``).
    """
    return await runtime.devices.get_device(device_id)


#: A route parameter (or ``dependencies=[Depends(known_device)]``): 404 for an unknown device.
KnownDevice = Annotated[Device, Depends(known_device)]


async def device_out(runtime: MeterRuntime, device: Device) -> DeviceOut:
    """A registered device with its latest reading from the cache."""
    latest: dict[str, Any] | None = await runtime.cache.get(latest_key(device.device_id))
    return DeviceOut(
        device_id=device.device_id,
        device_type=device.device_type,
        metadata=device.metadata,
        status=device.status,
        last_seen=device.last_seen,
        registered_at=device.registered_at,
        latest=ReadingOut.model_validate(latest) if latest else None,
    )


def devices_router(settings: MeterSettings) -> APIRouter:
    """Build the devices router with the configured rate limits."""
    router = APIRouter(prefix="/devices", tags=["devices"], responses=error_responses(401, 403))
    window = settings.rate_limit_window
    write = limited_permission("devices:write", limit=settings.write_rate_limit, window=window, name="devices-write")

    @router.post("", status_code=http_status.HTTP_201_CREATED, responses=error_responses(400, 413, 429))
    async def register(
        body: DeviceIn, runtime: Runtime, _user: Annotated[Principal, Depends(write)]
    ) -> APIResponse[DeviceRegistered]:
        """Register (or re-register) a meter; the first registration returns its MQTT credentials, once.

        The meter logs in with username = its id, this password and client id = its id.
        Only an argon2id hash is kept: a lost password means deleting and registering again.
        """
        validate_device_id(body.device_id)  # the credential's rule (no ':'), before anything is stored
        device = await runtime.devices.register_device(body.device_id, body.device_type, metadata=body.metadata)
        secret = await runtime.identity.issue(body.device_id)
        out = DeviceRegistered(**(await device_out(runtime, device)).model_dump())
        if secret is not None:
            out.credentials = DeviceCredentialsOut(username=body.device_id, password=secret, client_id=body.device_id)
        return APIResponse.success(out, message="Device registered")

    @router.get("", dependencies=[_read])
    async def list_devices(
        runtime: Runtime,
        page: Annotated[int, Query(ge=1)] = 1,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        status: DeviceState | None = None,
        device_type: str | None = None,
    ) -> PaginatedResponse[DeviceOut]:
        """List registered meters, ordered by id."""
        devices = await runtime.devices.list_devices(device_type, status)
        chunk = devices[(page - 1) * limit : page * limit]
        items = [await device_out(runtime, device) for device in chunk]
        return APIResponse.paginated(items, page=page, limit=limit, total=len(devices))

    @router.get("/{device_id}", responses=_ON_DEVICE)
    async def get_device(device: KnownDevice, runtime: Runtime) -> APIResponse[DeviceOut]:
        """One meter with its status and latest reading."""
        return APIResponse.success(await device_out(runtime, device))

    @router.get("/{device_id}/status", responses=_ON_DEVICE)
    async def device_status(device: KnownDevice, runtime: Runtime) -> APIResponse[dict[str, Any]]:
        """Online/offline status, last-seen time and latest reading of a meter."""
        out = await device_out(runtime, device)
        return APIResponse.success(
            {"device_id": out.device_id, "status": out.status, "last_seen": out.last_seen, "latest": out.latest}
        )

    @router.delete("/{device_id}", responses=error_responses(404, 429))
    async def unregister(
        device_id: DeviceId, runtime: Runtime, _user: Annotated[Principal, Depends(write)]
    ) -> APIResponse[None]:
        """Remove a meter from the registry (its readings stay)."""
        await runtime.devices.unregister_device(device_id)
        await runtime.identity.forget(device_id)  # its credential (and broker client) go too
        return APIResponse.success(None, message="Device removed")

    return router
