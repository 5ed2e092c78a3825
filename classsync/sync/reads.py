"""The read API's application service: Class states by id, QBO Id or full name, and watching them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from classsync.domain import (
    ClassOutcome,
    ErrorCode,
    InvalidArgument,
    SyncStatus,
    WatchExpired,
    identity_key,
    split_full_name,
)
from classsync.sync.caller_outcomes import is_settled, with_job_state
from classsync.sync.ports import ClassReader, ClassView, JobState
from classsync.sync.settled import SettledBoard

# One read names at most this many keys in all (ids + qb_ids + full_names): a read's cost and
# its answer's size stay bounded, and the store's IN lists stay a few chunks long.
MAX_LOOKUP_KEYS = 1000
# A watch holds a gRPC worker thread; one nobody bounds with a deadline still ends after this.
MAX_WATCH_SECONDS = 600.0
# Other replicas settle Classes too; the SettledBoard only hears about this process's.
_POLL_OTHER_REPLICAS_S = 1.0

ID, QB_ID, FULL_NAME = "id", "qb_id", "full_name"


@dataclass(frozen=True, slots=True)
class ClassLookup:
    """The keys a caller asked for, each list in the caller's order."""

    ids: tuple[str, ...] = ()
    qb_ids: tuple[str, ...] = ()
    full_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Key:
    kind: str  # ID, QB_ID or FULL_NAME
    text: str  # as asked
    stream_index: int  # position in ids + qb_ids + full_names
    request_index: int  # position in its own list


class ClassReadService:
    """Answers GetClasses / WatchClasses from the database; never calls QBO. Knows nothing of gRPC."""

    def __init__(
        self,
        reader: ClassReader,
        board: SettledBoard,
        *,
        max_keys: int = MAX_LOOKUP_KEYS,
        max_watch_seconds: float = MAX_WATCH_SECONDS,
        poll_seconds: float = _POLL_OTHER_REPLICAS_S,
    ) -> None:
        self._reader = reader
        self._board = board
        self._max_keys = max_keys
        self._max_watch_seconds = max_watch_seconds
        self._poll_seconds = poll_seconds

    def get(self, realm_id: str, lookup: ClassLookup) -> list[ClassOutcome]:
        """One outcome per Class found and one NOT_FOUND per key that found none, in key order."""
        keys = self._keys(lookup)
        views = self._reader.find(
            realm_id,
            [k.text for k in keys if k.kind == ID],
            [k.text for k in keys if k.kind == QB_ID],
            [_full_name_key(k.text) for k in keys if k.kind == FULL_NAME],
        )
        return _match(keys, views, realm_id)

    def watch(
        self,
        realm_id: str,
        lookup: ClassLookup,
        *,
        is_active: Callable[[], bool],
        time_remaining: Callable[[], float | None],
    ) -> Iterator[ClassOutcome]:
        """Each Class's current state, then each watched PENDING Class as it settles.

        Ends when none is left unsettled, when ``is_active`` turns False (the caller cancelled)
        or when ``time_remaining`` (the caller's deadline) runs out; raises WatchExpired after
        ``max_watch_seconds`` with Classes still unsettled.
        """
        current = self.get(realm_id, lookup)
        yield from current
        watched = {o.id: o for o in current if o.status is SyncStatus.PENDING}
        if not watched:
            return
        ticket = self._board.subscribe(watched)
        try:
            yield from self._follow(realm_id, watched, ticket, is_active, time_remaining)
        finally:
            self._board.unsubscribe(ticket)

    def _follow(
        self,
        realm_id: str,
        watched: dict[str, ClassOutcome],
        ticket: int,
        is_active: Callable[[], bool],
        time_remaining: Callable[[], float | None],
    ) -> Iterator[ClassOutcome]:
        # Polled first: a Class may have settled between the first read and subscribe().
        started = time.monotonic()
        next_poll = 0.0
        while watched and is_active():
            wait = self._max_watch_seconds - (time.monotonic() - started)
            caller_left = time_remaining()
            if caller_left is not None:
                wait = min(wait, caller_left)
            if wait <= 0:
                # Raised for the caller's own deadline too: returning would race gRPC's
                # DEADLINE_EXCEEDED and could end the call OK with Classes still unsettled.
                waited = (
                    "the call's deadline passed"
                    if caller_left is not None and caller_left <= 0
                    else f"watched for {self._max_watch_seconds:g} s"
                )
                msg = (
                    f"{waited}; {len(watched)} Class(es) still PENDING (they are stored and "
                    "will sync): watch again"
                )
                raise WatchExpired(msg)
            if time.monotonic() >= next_poll:
                views = self._reader.find(realm_id, sorted(watched), [], [])
                yield from _settled_news(watched, {v.class_id: _state_of(v) for v in views})
                next_poll = time.monotonic() + self._poll_seconds
                continue
            arrived = self._board.take(ticket, min(wait, max(0.0, next_poll - time.monotonic())))
            yield from _settled_news(watched, arrived)

    def _keys(self, lookup: ClassLookup) -> list[_Key]:
        total = len(lookup.ids) + len(lookup.qb_ids) + len(lookup.full_names)
        if total == 0:
            msg = "the request names no Class: set ids, qb_ids or full_names"
            raise InvalidArgument(msg)
        if total > self._max_keys:
            msg = (
                f"the request names {total} keys; at most {self._max_keys} are accepted per "
                "call (split it into several calls)"
            )
            raise InvalidArgument(msg)
        keys: list[_Key] = []
        for kind, texts in (
            (ID, lookup.ids),
            (QB_ID, lookup.qb_ids),
            (FULL_NAME, lookup.full_names),
        ):
            for position, text in enumerate(texts):
                if not text.strip():
                    msg = f"{kind}s[{position}] is blank"
                    raise InvalidArgument(msg)
                if "\x00" in text:
                    # No Class can hold one (validation refuses it), and PostgreSQL text refuses it.
                    msg = f"{kind}s[{position}] contains a NUL character (U+0000)"
                    raise InvalidArgument(msg)
                keys.append(_Key(kind, text.strip(), len(keys), position))
        return keys


def _full_name_key(full_name: str) -> str:
    """'A / B', 'A:B' and 'a:b' name the same Class: its identity key."""
    return identity_key(split_full_name(full_name))


def _key_of(key: _Key) -> str:
    return _full_name_key(key.text) if key.kind == FULL_NAME else key.text


def _match(keys: Sequence[_Key], views: Sequence[ClassView], realm_id: str) -> list[ClassOutcome]:
    # A full name finds the row holding it now, else the row whose caller last sent it (a Class
    # renamed or moved in QBO since): holders are laid over the caller keys.
    by_name = {v.caller_key: v for v in views if v.caller_key}
    by_name.update({v.key: v for v in views if v.key})
    by_kind: dict[str, dict[str, ClassView]] = {
        ID: {v.class_id: v for v in views},
        QB_ID: {v.qb_id: v for v in views if v.qb_id},
        FULL_NAME: by_name,
    }
    answered: set[str] = set()
    outcomes: list[ClassOutcome] = []
    for key in keys:
        view = by_kind[key.kind].get(_key_of(key))
        if view is None:
            outcomes.append(_not_found(key, realm_id))
        elif view.class_id not in answered:
            answered.add(view.class_id)
            outcomes.append(_found(key, view))
    return outcomes


def _not_found(key: _Key, realm_id: str) -> ClassOutcome:
    # Same key asked twice: answered twice (it costs nothing and keeps one result per key).
    return ClassOutcome(
        stream_index=key.stream_index,
        request_index=key.request_index,
        status=SyncStatus.NOT_FOUND,
        id=key.text if key.kind == ID else "",
        qb_id=key.text if key.kind == QB_ID else "",
        full_name=key.text if key.kind == FULL_NAME else "",
        error_code=ErrorCode.NOT_FOUND.value,
        error_message=f"no Class with {key.kind} {key.text!r} in realm {realm_id}",
    )


def _found(key: _Key, view: ClassView) -> ClassOutcome:
    base = ClassOutcome(
        stream_index=key.stream_index,
        request_index=key.request_index,
        status=SyncStatus.PENDING,
        name=view.name,
        full_name=view.full_name or view.name,  # the key is case-folded: not for display
        id=view.class_id,
    )
    return with_job_state(base, _state_of(view), unsettled_is_timed_out=False)


def _state_of(view: ClassView) -> JobState:
    return JobState(
        class_id=view.class_id,
        status=view.status,
        generation=view.generation,
        qb_id=view.qb_id,
        version_token=view.version_token,
        error_code=view.error_code,
        error_message=view.error_message,
    )


def _settled_news(
    watched: dict[str, ClassOutcome], states: dict[str, JobState]
) -> Iterator[ClassOutcome]:
    """The watched Classes that ``states`` shows settled, each once; they stop being watched."""
    for class_id in [cid for cid in watched if cid in states and is_settled(states[cid])]:
        yield with_job_state(watched.pop(class_id), states[class_id], unsettled_is_timed_out=False)
