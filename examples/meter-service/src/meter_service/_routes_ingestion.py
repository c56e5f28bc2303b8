"""``GET /api/v1/ingestion``: this replica's telemetry counters (the dashboard's ingestion rate)."""

from typing import Annotated

from energy_auth.fastapi import require_permission
from energy_common.apidocs import error_responses
from energy_common.responses import APIResponse
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from meter_service._runtime import MeterRuntime
from meter_service._security import get_runtime

__all__ = ["IngestionOut", "ingestion_router"]


class IngestionOut(BaseModel):
    """Counters since this replica started; a rate is the difference of two reads over their interval."""

    received: int = Field(description="Telemetry messages handed to the ingestion.")
    stored: int = Field(description="Readings written to the database.")
    duplicates: int = Field(description="Redelivered readings recognised and skipped.")
    batches: int = Field(description="Batches written.")
    last_batch: int = Field(description="Readings in the last batch.")
    store_failures: int = Field(description="Batches that failed to store (their messages are redelivered).")
    dead_letters: int = Field(description="Malformed messages sent to the dead-letter topic.")


def ingestion_router() -> APIRouter:
    """Build the ingestion router (``devices:read``)."""
    router = APIRouter(
        tags=["ingestion"],
        dependencies=[Depends(require_permission("devices:read"))],
        responses=error_responses(401, 403),
    )

    @router.get("/ingestion")
    async def ingestion(runtime: Annotated[MeterRuntime, Depends(get_runtime)]) -> APIResponse[IngestionOut]:
        """Telemetry counters of the replica that answers (each replica counts its own share)."""
        stats = runtime.ingestor.stats
        return APIResponse.success(
            IngestionOut(
                received=stats.received,
                stored=stats.stored,
                duplicates=stats.duplicates,
                batches=stats.batches,
                last_batch=stats.last_batch,
                store_failures=stats.store_failures,
                dead_letters=runtime.dead_letters,
            )
        )

    return router
