"""Wiring of the two-way paths: the CDC poller, the webhook listener and its worker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from classsync.api.webhooks import WebhookServer
from classsync.config import Settings
from classsync.store.unit_of_work import SqlAlchemyRemoteUnitOfWork
from classsync.sync.conflicts import ConflictCounter
from classsync.sync.limiter import RateLimiter
from classsync.sync.pull import CdcPoller
from classsync.sync.push import WebhookIntake, WebhookWorker
from classsync.sync.remote_changes import RemoteChangeApplier
from classsync.sync.remote_ports import QboChangeFeed


@dataclass
class TwoWay:
    """Changes made in QBO flowing back: the CDC poller, the webhook listener and its worker.

    ``conflicts`` counts every field the conflict rule decided (for metrics).
    """

    conflicts: ConflictCounter
    applier: RemoteChangeApplier
    poller: CdcPoller | None
    worker: WebhookWorker
    webhooks: WebhookServer | None

    def start(self, *, syncing: bool) -> None:
        """Start the listener always (events are stored), the poller and worker when syncing."""
        if self.webhooks is not None:
            self.webhooks.start()
        if syncing:
            self.worker.start()
            if self.poller is not None:
                self.poller.start()

    def stop(self, timeout: float) -> None:
        """Stop listening first (Intuit delivers again later), then the background threads."""
        if self.webhooks is not None:
            self.webhooks.stop()
        self.worker.stop(timeout)
        if self.poller is not None:
            self.poller.stop(timeout)


def build_applier(
    remote_uow: Callable[[], SqlAlchemyRemoteUnitOfWork], conflicts: ConflictCounter
) -> RemoteChangeApplier:
    """Applies Classes changed in QBO to local rows under the conflict rule."""
    return RemoteChangeApplier(remote_uow, conflicts)


def build_two_way(
    settings: Settings,
    remote_uow: Callable[[], SqlAlchemyRemoteUnitOfWork],
    feed: QboChangeFeed,
    limiter: RateLimiter,
    applier: RemoteChangeApplier,
    conflicts: ConflictCounter,
    connected_realms: Callable[[], Sequence[str]],
) -> TwoWay:
    """Wire the pull (CDC) and push (webhook) paths for every connected realm.

    ``feed`` is QBO as both paths read it (the gateway, metered when metrics are on).
    """

    def realms() -> list[str]:
        # QBO_REALM_ID always (as the engine treats it), then every other connected company;
        # read on each poll, so `classsync realm add/remove` takes effect without a restart.
        others = [r for r in connected_realms() if r != settings.qbo_realm_id]
        return [settings.qbo_realm_id, *others]

    poller = None
    if settings.qbo_cdc_interval_seconds > 0:
        poller = CdcPoller(
            feed,
            applier,
            remote_uow,
            limiter,
            realms,
            interval_seconds=settings.qbo_cdc_interval_seconds,
        )
    worker = WebhookWorker(
        feed,
        applier,
        remote_uow,
        limiter,
        realms,
        unreadable=poller.poll_soon if poller is not None else lambda: None,
    )
    webhooks = None
    token = settings.qbo_webhook_verifier_token
    if settings.webhook_address is not None and token is not None:
        intake = WebhookIntake(remote_uow, worker.wake)
        webhooks = WebhookServer(
            settings.webhook_address,
            verifier_token=token.get_secret_value,
            accept=intake.accept,
        )
    return TwoWay(conflicts, applier, poller, worker, webhooks)
