"""Bodies of the warm pools' admin API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ResizeRequest(BaseModel):
    """PUT /api/v1/admin/pools/<environment>/<flavor>/size: the pool's new size."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=0, le=100)
