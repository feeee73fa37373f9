"""Temporal batch operations: one server-side operation over every workflow a query matches."""

from __future__ import annotations

import asyncio
import time
import uuid

from pydantic import BaseModel
from temporalio.api.batch.v1 import BatchOperationCancellation, BatchOperationSignal
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    StartBatchOperationRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

IDENTITY = "offload"
# The server runs few batch operations per namespace at once (one, by default): a second
# one waits for the first rather than failing.
_BUSY_RETRY_SECONDS = 0.5


_UNFINISHED = (
    BatchOperationState.BATCH_OPERATION_STATE_UNSPECIFIED,
    BatchOperationState.BATCH_OPERATION_STATE_RUNNING,
)


class BatchResult(BaseModel):
    """What a finished batch operation did: workflows it matched, acted on, failed on."""

    job_id: str
    total: int = 0
    done: int = 0
    failed: int = 0


async def _start(client: Client, request: StartBatchOperationRequest, deadline: float) -> None:
    while True:
        try:
            await client.workflow_service.start_batch_operation(request)
            return
        except RPCError as err:
            if err.status != RPCStatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
        await asyncio.sleep(_BUSY_RETRY_SECONDS)


async def run_batch(
    client: Client,
    query: str,
    reason: str,
    *,
    cancel: bool = False,
    signal: str | None = None,
    signal_arg: object = None,
    timeout_seconds: float = 120.0,
) -> BatchResult:
    """Cancel, or send `signal` (with `signal_arg`) to, every workflow `query` matches.

    Waits until the operation has finished and returns its counts.

    Raises:
        TimeoutError: the operation is still running after `timeout_seconds`.
    """
    job_id = f"offload-{uuid.uuid4()}"
    request = StartBatchOperationRequest(
        namespace=client.namespace, visibility_query=query, job_id=job_id, reason=reason
    )
    if cancel:
        request.cancellation_operation.CopyFrom(BatchOperationCancellation(identity=IDENTITY))
    elif signal is not None:
        payloads = await client.data_converter.encode([signal_arg])
        request.signal_operation.CopyFrom(
            BatchOperationSignal(
                signal=signal, input=Payloads(payloads=payloads), identity=IDENTITY
            )
        )
    else:
        raise ValueError("a batch operation cancels or signals")
    deadline = time.monotonic() + timeout_seconds
    await _start(client, request, deadline)
    describe = DescribeBatchOperationRequest(namespace=client.namespace, job_id=job_id)
    while True:
        found = await client.workflow_service.describe_batch_operation(describe)
        if found.state not in _UNFINISHED:
            return BatchResult(
                job_id=job_id,
                total=found.total_operation_count,
                done=found.complete_operation_count,
                failed=found.failure_operation_count,
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch operation {job_id} still running; see the Web UI")
        await asyncio.sleep(0.2)
