"""A real ``tinker.TrainingClient`` answered in this process: test custom losses offline.

:func:`offline_training_client` builds the SDK's own ``TrainingClient`` on an
``httpx.MockTransport``: ``forward_backward_custom`` runs its real path
(forward request, the loss on the SDK's background thread, the "No gradient
computed" check, the backward request with ``weights = -∂loss/∂logprobs``, the
metric merge) while a function here plays the server, answering every forward
with log-probs from ``logprobs_fn`` and recording what the SDK sends. Nothing
touches the network.

Needs the ``tinker`` package (imported when the function is called) and relies on
the SDK's request and response encodings (protobuf) and its client holder,
as of ``tinker`` 0.38.

Examples
--------
>>> import numpy as np
>>> import tinker
>>> from arraypenalties.tinker import as_custom_loss_fn
>>> from arraypenalties.tinker.testing import offline_training_client
>>> datum = tinker.Datum(
...     model_input=tinker.ModelInput.from_ints([1, 2, 3]),
...     loss_fn_inputs={"target_tokens": np.asarray([2, 3, 4])},
... )
>>> loss_fn = as_custom_loss_fn(lambda data, lps: -lps[0].sum())
>>> with offline_training_client(lambda tokens, index: -0.5 * np.ones(tokens.shape)) as server:
...     result = server.client.forward_backward_custom([datum], loss_fn).result()
>>> result.metrics["loss_total"], server.backward_weights[0].tolist()
(1.5, [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["OfflineServer", "Request", "default_logprobs", "offline_training_client"]

LogprobsFn = Callable[[Any, int], Any]


def default_logprobs(tokens: Any, index: int) -> Any:
    """Log-probs a fake model gives: ``-0.1 · (1 + (token + index) mod 7)``, float32."""
    return (-0.1 * (1 + (np.asarray(tokens) + index) % 7)).astype(np.float32)


@dataclass(frozen=True)
class Request:
    """One ``/forward_backward`` request as the server received it (decoded to numpy)."""

    forward_only: bool
    loss_fn: str
    inputs: list[dict[str, Any]]


@dataclass
class OfflineServer:
    """The client and what its fake server saw."""

    client: Any
    requests: list[Request] = field(default_factory=list)

    @property
    def backward_weights(self) -> list[Any]:
        """The ``weights`` of every datum of the last backward request (``-∂loss/∂logprobs``)."""
        backward = [r for r in self.requests if not r.forward_only]
        if not backward:
            msg = "no backward request was sent"
            raise LookupError(msg)
        return [datum["weights"] for datum in backward[-1].inputs]


def _decode_tensor(msg: Any, pb: Any) -> Any:
    dtype = {pb.DTYPE_FLOAT32: np.float32, pb.DTYPE_INT64: np.int64}[msg.dtype]
    return np.frombuffer(msg.dense, dtype=dtype).reshape(tuple(msg.shape)).copy()


def _encode_output(logprobs: list[Any], metrics: dict[str, float], pb: Any) -> bytes:
    out = pb.ForwardBackwardOutput(loss_fn_output_type="CrossEntropyLossReturn")
    for key, value in metrics.items():
        out.metrics[key] = value
    # one ArrayRecord per run of datums with the same trailing shape (ragged K)
    for trailing, group in itertools.groupby(logprobs, key=lambda a: a.shape[1:]):
        arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in group]
        offsets = np.cumsum([0] + [a.nbytes for a in arrays]).astype(np.int64)
        record = out.loss_fn_outputs.add(num_datums=len(arrays))
        batched = record.fields["logprobs"]
        batched.data = b"".join(a.tobytes() for a in arrays)
        batched.offsets = offsets.tobytes()
        batched.dtype = pb.DTYPE_FLOAT32
        batched.trailing_shape.extend(trailing)
    return bytes(out.SerializeToString())


@contextmanager
def offline_training_client(
    logprobs_fn: LogprobsFn = default_logprobs,
) -> Iterator[OfflineServer]:
    """A ``tinker.TrainingClient`` whose server is ``logprobs_fn`` in this process.

    Parameters
    ----------
    logprobs_fn : callable
        ``logprobs_fn(target_tokens, datum_index) -> array`` shaped like the
        datum's ``target_tokens`` (``[T]`` or ``[T, K]``): the log-probs the fake
        model returns.

    Yields
    ------
    OfflineServer
        ``.client`` (a real ``TrainingClient``), ``.requests`` (every
        ``/forward_backward`` request, decoded) and ``.backward_weights``.
    """
    import httpx
    from tinker import types
    from tinker._client import AsyncTinker
    from tinker.lib.client_connection_pool_type import ClientConnectionPoolType
    from tinker.lib.internal_client_holder import BytesSemaphore, InternalClientHolder
    from tinker.lib.public_interfaces.training_client import TrainingClient
    from tinker.proto import tinker_public_pb2 as pb

    pending: dict[str, bytes] = {}
    server = OfflineServer(client=None)
    counter = itertools.count()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/forward_backward":
            message = pb.ForwardBackwardRequest()
            message.ParseFromString(request.content)
            inputs = [
                {name: _decode_tensor(t, pb) for name, t in datum.loss_fn_inputs.items()}
                for datum in message.data
            ]
            server.requests.append(Request(message.forward_only, message.loss_fn, inputs))
            logprobs = [
                np.asarray(logprobs_fn(item["target_tokens"], index), dtype=np.float32)
                for index, item in enumerate(inputs)
            ]
            surrogate = -sum(
                float(np.sum(lp * item["weights"]))
                for lp, item in zip(logprobs, inputs, strict=True)
            )
            request_id = f"request-{next(counter)}"
            pending[request_id] = _encode_output(logprobs, {"loss:sum": surrogate}, pb)
            return httpx.Response(200, json={"request_id": request_id})
        if request.url.path == "/api/v1/retrieve_future":
            import json

            request_id = json.loads(request.content)["request_id"]
            return httpx.Response(
                200,
                content=pending.pop(request_id),
                headers={"content-type": "application/x-protobuf"},
            )
        return httpx.Response(404, json={"message": f"no route {request.url.path}"})

    class _Holder(InternalClientHolder):
        """The SDK's holder with its HTTP client on the mock transport (no session, no auth)."""

        def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
            self.client = client
            self._loop = loop
            self._telemetry = None
            self._session_id = "offline-session"
            self._client_config = types.ClientConfigResponse(use_pyqwest_transport=False)
            self._fwdbwd_dispatch_bytes_semaphore = BytesSemaphore(50_000_000)
            self._inflight_response_bytes_semaphore = BytesSemaphore(50_000_000)

        @contextmanager
        def aclient(self, client_pool_type: ClientConnectionPoolType) -> Iterator[Any]:
            yield self.client

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tinker-offline", daemon=True)
    thread.start()
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    client = AsyncTinker(
        api_key="tml-offline",
        base_url="http://offline.invalid",
        http_client=http,
        max_retries=0,
        _strict_response_validation=True,
    )
    holder = _Holder(client, loop)
    info = types.GetInfoResponse(
        model_data=types.ModelData(model_name="offline"), model_id="offline-model"
    )
    server.client = TrainingClient(holder, model_seq_id=0, model_id="offline-model", info=info)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(http.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
