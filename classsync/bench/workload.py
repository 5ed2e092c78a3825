"""Load client: realistic Class streams sent over real gRPC channels, timed per stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from classsync.api._generated import class_service_pb2 as pb
from classsync.api._generated import class_service_pb2_grpc as pb_grpc

WAIT_KEY = "x-classsync-wait-seconds"
REALM_KEY = "x-qbo-realm-id"
PER_REQUEST = ("x-classsync-response", "per-request")
# Streams of this many Classes are split into ClassRequests of at most this size (the server's
# default MAX_CLASSES_PER_REQUEST).
MAX_PER_REQUEST = 1000
# Every tenth Class is a top-level parent of the nine that follow (a two-level tree, as
# departments under regions), so ingest also creates ancestors and the engine orders parents first.
_FAMILY = 10


def make_classes(prefix: str, count: int) -> list[pb.Class]:
    """``count`` distinct Classes, in families of one parent and nine sub-classes."""
    classes = []
    for index in range(count):
        family, member = divmod(index, _FAMILY)
        parent = f"{prefix} Region {family}"
        if member == 0:
            name, full_name, sub = parent, parent, False
        else:
            name = f"Dept {member}"
            full_name, sub = f"{parent}:{name}", True
        classes.append(
            pb.Class(
                name=name,
                full_name=full_name,
                is_sub_class=sub,
                is_active=True,
                domain_source="QBO",
            )
        )
    return classes


def make_stream(classes: Sequence[pb.Class], per_request: int) -> list[pb.ClassRequest]:
    """One stream's ClassRequests, ``per_request`` Classes each."""
    return [
        pb.ClassRequest(classes=classes[start : start + per_request])
        for start in range(0, len(classes), per_request)
    ]


@dataclass
class StreamResult:
    """What one stream got back, and when."""

    started: float
    finished: float
    classes: int
    stored: int
    synced: int
    ok: bool
    error: str = ""
    # (when, Classes stored) for each reply: per-request answers show progress within a stream.
    replies: list[tuple[float, int]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Wall time of the call."""
        return self.finished - self.started


@dataclass
class LoadResult:
    """Every stream of one load run."""

    started: float
    finished: float
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Wall time of the whole run."""
        return self.finished - self.started

    @property
    def stored(self) -> int:
        """Classes the server said it stored."""
        return sum(s.stored for s in self.streams)

    @property
    def errors(self) -> list[str]:
        """Distinct call errors (empty when every stream completed)."""
        return sorted({s.error for s in self.streams if s.error})


class LoadClient:
    """Sends streams to one server over a few shared channels."""

    def __init__(self, address: str, channels: int = 4) -> None:
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
        self._channels = [
            grpc.insecure_channel(
                address, options=[*options, ("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(channels)
        ]
        self._stubs = [pb_grpc.ClassServiceStub(c) for c in self._channels]
        self._next = 0
        self._lock = threading.Lock()
        for channel in self._channels:
            grpc.channel_ready_future(channel).result(timeout=30)

    def close(self) -> None:
        """Close the channels."""
        for channel in self._channels:
            channel.close()

    def _stub(self) -> pb_grpc.ClassServiceStub:
        with self._lock:
            self._next = (self._next + 1) % len(self._stubs)
            return self._stubs[self._next]

    def send(
        self,
        requests: Sequence[pb.ClassRequest],
        *,
        wait_seconds: float | None = None,
        per_request: bool = False,
        timeout: float = 300.0,
        realm_id: str | None = None,
    ) -> StreamResult:
        """One CreateClass stream (to ``realm_id``, else the server's default realm); counts
        Classes stored (any id back) and synced."""
        metadata = []
        if realm_id is not None:
            metadata.append((REALM_KEY, realm_id))
        if wait_seconds is not None:
            metadata.append((WAIT_KEY, f"{wait_seconds:g}"))
        if per_request:
            metadata.append(PER_REQUEST)
        total = sum(len(r.classes) for r in requests)
        started = time.perf_counter()
        stored = synced = 0
        ok = True
        replies: list[tuple[float, int]] = []
        try:
            for reply in self._stub().CreateClass(
                iter(requests), metadata=metadata, timeout=timeout
            ):
                in_reply = 0
                for result in reply.results:
                    if result.id:
                        in_reply += 1
                    if result.status == "SYNCED":
                        synced += 1
                stored += in_reply
                replies.append((time.perf_counter(), in_reply))
                ok = ok and reply.message.startswith("✅")
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            failed = StreamResult(started, time.perf_counter(), total, stored, synced, False)
            failed.error, failed.replies = str(code), replies
            return failed
        return StreamResult(started, time.perf_counter(), total, stored, synced, ok, "", replies)

    def run(
        self,
        streams: Sequence[Sequence[pb.ClassRequest]],
        *,
        concurrency: int,
        wait_seconds: float | None = None,
        per_request: bool = False,
    ) -> LoadResult:
        """Send every stream, ``concurrency`` at a time."""
        result = LoadResult(time.perf_counter(), 0.0)

        def one(requests: Sequence[pb.ClassRequest]) -> StreamResult:
            return self.send(requests, wait_seconds=wait_seconds, per_request=per_request)

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-load") as pool:
            result.streams = list(pool.map(one, streams))
        result.finished = time.perf_counter()
        return result


def completions(result: LoadResult, bin_seconds: float) -> Iterator[tuple[float, float]]:
    """(time since start, Classes completed per second) in bins of ``bin_seconds``."""
    if not result.streams:
        return
    bins: dict[int, int] = {}
    for stream in result.streams:
        for when, stored in stream.replies:
            index = int((when - result.started) / bin_seconds)
            bins[index] = bins.get(index, 0) + stored
    for index in range(max(bins) + 1):
        yield (index + 1) * bin_seconds, bins.get(index, 0) / bin_seconds
