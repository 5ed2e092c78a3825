"""Changes made in QBO flow back: CDC and webhooks against the sandbox's accountant, the real server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from classsync.store.models import QBClass, SyncJob, WebhookEvent
from tests.e2e.conftest import Service, klass
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

VERIFIER = "e2e-verifier-token"
SUCCESS_MESSAGE = "✅ Classes created and synced successfully"


def rows_by_qb_id(service: Service) -> dict[str, QBClass]:
    return {row.qb_id: row for row in service.rows() if row.qb_id}


def local_follows_qbo(service: Service) -> bool:
    """Every QBO class has exactly one local row with its name, full name, state and SyncToken."""
    rows = rows_by_qb_id(service)
    for qbo in service.qbo_classes():
        row = rows.get(qbo["Id"])
        if row is None or (
            row.name,
            row.full_name_key,
            row.is_active,
            row.version_token,
        ) != (
            qbo["Name"],
            qbo["FullyQualifiedName"].casefold(),  # the stored identity key is case-folded
            qbo["Active"],
            int(qbo["SyncToken"]),
        ):
            return False
    return len(service.rows()) == len(service.qbo_classes())


def seed(service: Service) -> dict[str, str]:
    """Dept A, Dept B and Dept A:Team, synced; their QBO Ids by full name."""
    [reply] = service.send([klass("Dept A"), klass("Dept B"), klass("Team", "Dept A:Team")])
    assert reply.message == SUCCESS_MESSAGE
    return {r.full_name: r.qb_id for r in service.rows()}


def inbox_count(service: Service) -> int:
    with service.app.storage.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def webhook_service(service_factory: Callable[..., Service], box: Any, **overrides: Any) -> Service:
    """A server with its webhook listener, the sandbox's webhooks pointed at it."""
    realm = box.admin.create_realm()
    options: dict[str, Any] = {
        "webhook_address": "127.0.0.1:0",
        "qbo_webhook_verifier_token": VERIFIER,
        "qbo_cdc_interval_seconds": 0,
    }
    options.update(overrides)
    service = service_factory(sandbox_=box, realm_=realm, **options)
    port = webhook_port(service)
    box.admin.update_config(
        webhook_url=f"http://127.0.0.1:{port}/webhooks/qbo", webhook_verifier_token=VERIFIER
    )
    return service


def webhook_port(service: Service) -> int:
    two_way = service.app.two_way
    assert two_way is not None
    assert two_way.webhooks is not None
    return two_way.webhooks.port


def post_webhook(service: Service, body: bytes, signature: str | None) -> int:
    url = f"http://127.0.0.1:{webhook_port(service)}/webhooks/qbo"
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["intuit-signature"] = signature
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def sign(body: bytes, token: str = VERIFIER) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Seeded:
    """A running server whose Dept A, Dept B and Dept A:Team are synced (see ``seed``)."""

    service: Service
    ids: dict[str, str]  # their QBO Ids by full name

    @property
    def admin(self) -> Any:
        """The sandbox's accountant: edits made in QBO."""
        return self.service.sandbox.admin

    @property
    def realm(self) -> str:
        return self.service.realm_id

    def in_qbo(self, full_name: str) -> dict[str, Any]:
        """The seeded Class first stored at ``full_name``, as QBO holds it now."""
        return {c["Id"]: c for c in self.service.qbo_classes()}[self.ids[full_name]]

    def rename_in_qbo(self, full_name: str, new_name: str, *, read_back: bool) -> None:
        """The accountant renames a seeded Class; with ``read_back``, wait until it is local."""
        self.admin.rename_class(self.realm, self.ids[full_name], new_name)
        if read_back:
            wait_for(
                lambda: local_follows_qbo(self.service),
                timeout=3.0,
                what="the rename to be read back",
            )


@pytest.fixture
def seeded(service_factory: Callable[..., Service]) -> Callable[..., Seeded]:
    """Start a server (``service_factory`` options) on the shared sandbox and seed it."""

    def start(**overrides: Any) -> Seeded:
        service = service_factory(**overrides)
        return Seeded(service, seed(service))

    return start


@pytest.fixture
def webhook_seeded(
    service_factory: Callable[..., Service], sandbox_factory: Callable[..., Any]
) -> Callable[..., Seeded]:
    """A seeded server with its webhook listener, on a sandbox of its own (``sandbox_options``);
    returns once the seed's own webhooks were delivered."""

    def start(*, cdc_seconds: float = 0, **sandbox_options: Any) -> Seeded:
        box = sandbox_factory(port=0, **sandbox_options)
        service = webhook_service(service_factory, box, qbo_cdc_interval_seconds=cdc_seconds)
        seeded = Seeded(service, seed(service))
        wait_for(
            lambda: box.admin.counters()["webhooks_pending"] == 0, timeout=5.0, what="seed webhooks"
        )
        return seeded

    return start


class TestPullThroughCdc:
    def test_rename_deactivate_reparent_and_creates_follow_within_one_interval(
        self, seeded: Callable[..., Seeded]
    ) -> None:
        world = seeded(qbo_cdc_interval_seconds=1.0)
        ids, admin, realm = world.ids, world.admin, world.realm
        admin.rename_class(realm, ids["Dept A:Team"], "Squad")
        admin.move_class(realm, ids["Dept A:Team"], ids["Dept B"])
        admin.set_class_active(realm, ids["Dept A"], False)
        created = admin.create_class(realm, "Made In QBO", parent_id=ids["Dept B"])

        wait_for(
            lambda: local_follows_qbo(world.service),
            timeout=3.0,
            what="the CDC poll to apply the edits",
        )
        rows = rows_by_qb_id(world.service)
        assert rows[ids["Dept A:Team"]].full_name == "Dept B:Squad"
        assert rows[ids["Dept A"]].is_active is False
        assert rows[created["Id"]].full_name == "Dept B:Made In QBO"
        jobs = {job.class_id: job.status for job in world.service.jobs()}
        assert jobs[rows[created["Id"]].id] == "SYNCED"

    def test_a_renamed_parent_moves_its_sub_classes_full_names(
        self, seeded: Callable[..., Seeded]
    ) -> None:
        world = seeded(qbo_cdc_interval_seconds=1.0)
        world.rename_in_qbo("Dept A", "Division A", read_back=True)
        assert rows_by_qb_id(world.service)[world.ids["Dept A:Team"]].full_name == "Division A:Team"
        # The caller's next resend under the new name finds the same rows.
        [reply] = world.service.send([klass("Team", "Division A:Team")])
        assert reply.results[0].qb_id == world.ids["Dept A:Team"]
        assert len(world.service.rows()) == 3

    def test_a_rename_in_another_casing_follows_and_a_resend_finds_the_row(
        self, seeded: Callable[..., Seeded]
    ) -> None:
        world = seeded(qbo_cdc_interval_seconds=0.5)
        world.rename_in_qbo("Dept B", "DEPT B", read_back=True)
        assert rows_by_qb_id(world.service)[world.ids["Dept B"]].full_name == "DEPT B"
        [reply] = world.service.send(
            [klass("Dept B")]
        )  # the caller repeats itself: nothing changes
        assert reply.results[0].qb_id == world.ids["Dept B"]
        assert world.in_qbo("Dept B")["Name"] == "DEPT B"

    @pytest.mark.slow
    def test_more_changes_than_one_cdc_answer_holds_are_all_applied(
        self, service_factory: Callable[..., Service], sandbox_factory: Callable[..., Any]
    ) -> None:
        # QBO answers at most 1,000 objects, the oldest first: the poll must ask again.
        box = sandbox_factory(port=0)
        realm = box.admin.create_realm()
        service = service_factory(sandbox_=box, realm_=realm, qbo_cdc_interval_seconds=1.0)
        wait_for(lambda: _polls(box) >= 1, timeout=5.0, what="the first poll (a full read)")
        for n in range(1005):
            box.admin.create_class(realm["realm_id"], f"Accountant {n}")
        wait_for(lambda: len(service.rows()) == 1005, timeout=60.0, what="every change")
        assert local_follows_qbo(service)
        cdc = box.admin.counters()["requests"]["cdc"]
        assert sum(cdc.values()) >= 2


def _polls(box: Any) -> int:
    requests = box.admin.counters()["requests"]
    return sum(sum((requests.get(name) or {}).values()) for name in ("cdc", "query"))


class TestPushThroughWebhooks:
    def test_edits_follow_within_about_a_second(
        self, webhook_seeded: Callable[..., Seeded]
    ) -> None:
        world = webhook_seeded()
        ids, admin, realm = world.ids, world.admin, world.realm
        admin.rename_class(realm, ids["Dept A:Team"], "Squad")
        took = wait_for(
            lambda: rows_by_qb_id(world.service)[ids["Dept A:Team"]].name == "Squad",
            timeout=3.0,
            what="rename",
        )
        assert took < 2.0
        admin.set_class_active(realm, ids["Dept B"], False)
        admin.move_class(realm, ids["Dept A:Team"], None)
        wait_for(lambda: local_follows_qbo(world.service), timeout=3.0, what="deactivate and move")
        assert rows_by_qb_id(world.service)[ids["Dept A:Team"]].full_name == "Squad"

    def test_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(
        self, service_factory: Callable[..., Service], sandbox_factory: Callable[..., Any]
    ) -> None:
        box = sandbox_factory(port=0)
        service = webhook_service(service_factory, box)
        event = {
            "specversion": "1.0",
            "id": "evt-1",
            "type": "qbo.class.updated.v1",
            "time": "2026-12-01T00:00:00.000Z",
            "intuitentityid": "1",
            "intuitaccountid": service.realm_id,
            "data": {},
        }
        body = json.dumps([event]).encode()
        assert post_webhook(service, body, None) == 401
        assert post_webhook(service, body, sign(body, "not-the-token")) == 401
        assert post_webhook(service, body, sign(body + b" ")) == 401
        assert inbox_count(service) == 0
        assert post_webhook(service, body, sign(body)) == 200
        assert inbox_count(service) == 1

    def test_the_legacy_format_is_accepted(self, webhook_seeded: Callable[..., Seeded]) -> None:
        world = webhook_seeded(webhook_format="legacy")
        world.rename_in_qbo("Dept B", "Dept Bee", read_back=False)
        wait_for(
            lambda: local_follows_qbo(world.service), timeout=3.0, what="the legacy notification"
        )

    def test_a_delivery_sent_twice_is_applied_once(
        self, webhook_seeded: Callable[..., Seeded]
    ) -> None:
        world = webhook_seeded(webhook_duplicate_deliveries=True)
        service, box = world.service, world.service.sandbox
        wait_for(lambda: _unprocessed(service) == 0, timeout=5.0, what="seed events processed")
        events_before = inbox_count(service)
        reads_before = _reads(box)
        sent_before = box.admin.counters()["webhooks_sent"]

        world.rename_in_qbo("Dept B", "Dept Bee", read_back=False)
        wait_for(
            lambda: box.admin.counters()["webhooks_sent"] >= sent_before + 2,
            timeout=5.0,
            what="2 sends",
        )
        wait_for(lambda: local_follows_qbo(service), timeout=3.0, what="the rename")
        wait_for(lambda: _unprocessed(service) == 0, timeout=5.0, what="events processed")
        assert inbox_count(service) == events_before + 1  # one event, stored once
        assert _reads(box) == reads_before + 1  # read from QBO once


def _unprocessed(service: Service) -> int:
    with service.app.storage.session_factory() as session:
        query = (
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.processed_at.is_(None))
        )
        return int(session.scalar(query) or 0)


def _reads(box: Any) -> int:
    return sum((box.admin.counters()["requests"].get("class.read") or {}).values())


class TestNoOpResends:
    def test_an_identical_resend_makes_no_qbo_call_and_answers_synced(
        self, service_factory: Callable[..., Service]
    ) -> None:
        service = service_factory(qbo_cdc_interval_seconds=0)
        payload = [klass("Dept A"), klass("Team", "Dept A:Team")]
        [first] = service.send(payload)
        assert first.message == SUCCESS_MESSAGE
        before = service.sandbox.admin.counters()["realms"][service.realm_id]["requests"]

        [again] = service.send(payload)
        assert again.message == SUCCESS_MESSAGE
        assert [r.status for r in again.results] == ["SYNCED", "SYNCED"]
        assert [r.sync_token for r in again.results] == [r.sync_token for r in first.results]
        after = service.sandbox.admin.counters()["realms"][service.realm_id]["requests"]
        assert after == before

        [changed] = service.send([klass("Team", "Dept A:Team", is_active=False)])
        assert changed.message == SUCCESS_MESSAGE
        assert service.sandbox.admin.counters()["realms"][service.realm_id]["requests"] > after
        assert int(changed.results[0].sync_token) > int(first.results[1].sync_token)


def conflicts(service: Service, winner: str) -> int:
    two_way = service.app.two_way
    assert two_way is not None
    return two_way.conflicts.total(winner)


class TestConflicts:
    @pytest.mark.parametrize("read_back", [False, True], ids=["unread", "read-back"])
    def test_a_qbo_rename_and_a_callers_deactivation_both_survive(
        self, seeded: Callable[..., Seeded], read_back: bool
    ) -> None:
        # Different fields: no conflict, whether or not this server heard of the rename first.
        world = seeded(qbo_cdc_interval_seconds=0.5 if read_back else 0)
        world.rename_in_qbo("Dept B", "Dept Bee", read_back=read_back)
        [reply] = world.service.send([klass("Dept B", is_active=False)])
        assert reply.message == SUCCESS_MESSAGE
        qbo = world.in_qbo("Dept B")
        assert (qbo["Name"], qbo["Active"]) == ("Dept Bee", False)
        assert local_follows_qbo(world.service)
        assert conflicts(world.service, "qbo") == conflicts(world.service, "caller") == 0

    @pytest.mark.parametrize(
        ("read_back", "kept", "winner"),
        [(False, "Dept Bee", "qbo"), (True, "Dept Sea", "caller")],
        ids=["unread", "read-back"],
    )
    def test_a_name_both_sides_changed_is_decided_once_and_counted(
        self, seeded: Callable[..., Seeded], read_back: bool, kept: str, winner: str
    ) -> None:
        # Unread, both changed the name since the last sync and QBO's value stays; once read
        # back, the caller's resend undoing it is the newer change and wins.
        world = seeded(qbo_cdc_interval_seconds=0.5 if read_back else 0)
        world.rename_in_qbo("Dept B", "Dept Bee", read_back=read_back)
        [reply] = world.service.send([klass("Dept Sea", qb_id=world.ids["Dept B"])])
        assert reply.results[0].status == "SYNCED"
        assert world.in_qbo("Dept B")["Name"] == kept
        assert local_follows_qbo(world.service)
        assert conflicts(world.service, winner) == 1

    def test_resending_the_same_payload_after_a_qbo_rename_changes_nothing(
        self, seeded: Callable[..., Seeded]
    ) -> None:
        world = seeded(qbo_cdc_interval_seconds=0.5)
        service, admin, realm = world.service, world.admin, world.realm
        payload = [klass("Dept A"), klass("Dept B"), klass("Team", "Dept A:Team")]
        [first] = service.send(payload)  # the seed again: the caller's view of it
        world.rename_in_qbo("Dept A", "Division A", read_back=True)
        before = admin.counters()["realms"][realm]["requests"]

        # The caller still calls it "Dept A": the same rows, no QBO write, the rename stands.
        [again] = service.send(payload)
        assert [r.status for r in again.results] == ["SYNCED"] * 3
        assert list(again.ids) == list(first.ids)
        assert [r.qb_id for r in again.results] == [r.qb_id for r in first.results]
        writes = admin.counters()["realms"][realm]["requests"] - before
        assert writes <= 1  # at most a CDC poll; no create, no update
        assert sorted(c["FullyQualifiedName"] for c in service.qbo_classes()) == [
            "Dept B",
            "Division A",
            "Division A:Team",
        ]
        assert len(service.rows()) == 3
        assert conflicts(service, "caller") == 0


@pytest.mark.slow
class TestWebhookOutage:
    def test_cdc_catches_up_with_nothing_lost(
        self,
        service_factory: Callable[..., Service],
        webhook_seeded: Callable[..., Seeded],
    ) -> None:
        world = webhook_seeded(cdc_seconds=2.0, webhook_retries=1, webhook_retry_backoff_ms=50)
        service, ids, admin, realm = world.service, world.ids, world.admin, world.realm
        box = service.sandbox
        admin.set_faults(webhook_fail=True)
        failed_before = admin.counters()["webhook_events_failed"]
        admin.rename_class(realm, ids["Dept A:Team"], "Squad")
        admin.move_class(realm, ids["Dept A:Team"], ids["Dept B"])
        admin.set_class_active(realm, ids["Dept A"], False)
        for n in range(5):
            admin.create_class(realm, f"Outage {n}")
        wait_for(
            lambda: admin.counters()["webhook_events_failed"] > failed_before,
            timeout=5.0,
            what="lost webhooks",
        )
        wait_for(lambda: local_follows_qbo(service), timeout=6.0, what="CDC to catch up")

        # The whole server down: edits made meanwhile are read at the next start.
        db_url = service.settings.database_url
        service.app.stop(grace=1.0)
        admin.rename_class(realm, ids["Dept B"], "Dept Bee")
        admin.create_class(realm, "While Down")
        admin.clear_faults()
        again = service_factory(
            db_url=db_url,
            sandbox_=box,
            realm_={"realm_id": realm, "refresh_token": admin.issue_tokens(realm)["refresh_token"]},
            qbo_cdc_interval_seconds=30.0,
        )
        wait_for(lambda: local_follows_qbo(again), timeout=5.0, what="the catch-up poll at start")
        keys = {row.full_name for row in again.rows()}
        assert {"Dept Bee:Squad", "While Down", "Outage 4"} <= keys
        with again.app.storage.session_factory() as session:
            jobs = session.scalar(select(func.count()).select_from(SyncJob))
        assert jobs == len(again.rows())


class TestEveryConnectedRealm:
    def test_an_edit_in_a_second_company_follows_through_cdc(
        self, service_factory: Callable[..., Service]
    ) -> None:
        from classsync.api.realm import REALM_KEY
        from classsync.realms import add_realm

        service = service_factory(qbo_cdc_interval_seconds=1.0)
        second = service.sandbox.admin.create_realm()
        add_realm(service.settings, second["realm_id"], second["refresh_token"])
        realm_id = str(second["realm_id"])
        [reply] = service.send([klass("Second Co Dept")], metadata=[(REALM_KEY, realm_id)])
        assert reply.message == SUCCESS_MESSAGE
        qb_id = reply.results[0].qb_id
        service.sandbox.admin.rename_class(realm_id, qb_id, "Renamed In QBO")

        def renamed() -> bool:
            row = next(r for r in service.rows() if r.id == reply.results[0].id)
            return row.name == "Renamed In QBO" and row.realm_id == realm_id

        wait_for(renamed, timeout=5.0, what="the second company's CDC poll to apply the rename")
