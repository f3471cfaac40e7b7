"""Who sees what, over every page and read API: one table of URLs, four people.

alice is admin of shop, bob a viewer of shop, charlie belongs to no application, root
is a superuser, and "anonymous" is not logged in. Every row is checked for each of
them against shop (their application) and warehouse (someone else's).

Adding a page or an API: append a row to READS (anything a GET shows) or WRITES
(anything that changes an application). A row's `url` receives a Target (the
application plus one session, event and key of it) and returns the path.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from recorder.models import ApiKey, Application, Event, Membership, Session

pytestmark = pytest.mark.django_db(databases="__all__")


@dataclass
class Target:
    """One application and one of each thing in it that a URL can name."""

    app: Application
    session: Session
    event: Event
    key: ApiKey
    member: object  # a viewer other than our personas, for member rows


@dataclass(frozen=True)
class Read:
    name: str
    url: Callable[[Target], str]
    # The URL names one application's object: outsiders get 404, not an empty page.
    scoped: bool
    # Anonymous callers get 401 (API) rather than a redirect to the login page.
    api: bool = False
    # Only the application's admins may open it: viewers get 403.
    admin_only: bool = False
    # Text that appears only for someone who may see the target's data.
    shows: Callable[[Target], str] = field(default=lambda t: t.session.key)


READS = [
    # Pages
    Read("sessions page", lambda t: "/", scoped=False),
    Read("timeline page", lambda t: f"/sessions/{t.session.id}", scoped=True),
    Read("correlation page", lambda t: f"/correlation/{t.event.correlation_id}", scoped=False,
         shows=lambda t: t.event.message),
    Read("storage page", lambda t: "/storage", scoped=False, shows=lambda t: t.app.name),
    Read("retention page", lambda t: f"/storage/apps/{t.app.id}/retention", scoped=True,
         admin_only=True, shows=lambda t: t.app.name),
    Read("applications page", lambda t: "/apps/", scoped=False, shows=lambda t: t.app.name),
    Read("API keys page", lambda t: f"/apps/{t.app.id}/keys", scoped=True,
         shows=lambda t: t.key.prefix),
    Read("members page", lambda t: f"/apps/{t.app.id}/members", scoped=True,
         shows=lambda t: t.member.username),
    Read("redaction page", lambda t: f"/apps/{t.app.id}/redaction", scoped=True,
         shows=lambda t: t.app.name),
    # Read API
    Read("sessions API", lambda t: "/api/v1/sessions", scoped=False, api=True),
    Read("session API", lambda t: f"/api/v1/sessions/{t.session.id}", scoped=True, api=True),
    Read("events API", lambda t: f"/api/v1/sessions/{t.session.id}/events", scoped=True,
         api=True, shows=lambda t: t.event.message),
    Read("histogram API", lambda t: f"/api/v1/sessions/{t.session.id}/histogram", scoped=True,
         api=True, shows=lambda t: '"buckets"'),
    Read("event API", lambda t: f"/api/v1/events/{t.event.id}", scoped=True, api=True,
         shows=lambda t: t.event.message),
    Read("events across sessions API", lambda t: "/api/v1/events", scoped=False, api=True,
         shows=lambda t: t.event.message),
    Read("correlation API", lambda t: f"/api/v1/correlation/{t.event.correlation_id}",
         scoped=False, api=True, shows=lambda t: t.event.message),
    Read("latest API", lambda t: "/api/v1/latest?pattern=cart::*&n=5", scoped=False, api=True,
         shows=lambda t: t.event.message),
    Read("snapshot API", lambda t: f"/api/v1/sessions/{t.session.id}/snapshot?at={t.event.id}",
         scoped=True, api=True, shows=lambda t: t.event.message),
    Read("diff API",
         lambda t: f"/api/v1/sessions/{t.session.id}/diff?from={t.event.id}&to={t.event.id}",
         scoped=True, api=True, shows=lambda t: '"state"'),
    Read("replay index API", lambda t: f"/api/v1/sessions/{t.session.id}/replay/index",
         scoped=True, api=True, shows=lambda t: f"[{t.event.id},"),
    Read("replay stream API", lambda t: f"/api/v1/sessions/{t.session.id}/replay?speed=max",
         scoped=True, api=True, shows=lambda t: t.event.message),
    Read("session export API", lambda t: f"/api/v1/sessions/{t.session.id}/export",
         scoped=True, api=True, shows=lambda t: t.event.message),
    Read("application export API", lambda t: f"/api/v1/export?application={t.app.name}",
         scoped=True, api=True, shows=lambda t: t.event.message),
]  # fmt: skip


@dataclass(frozen=True)
class Write:
    name: str
    url: Callable[[Target], str]
    data: Callable[[Target], dict]
    done: Callable[[Target], bool]  # did the change happen?


def _policy(t: Target) -> dict:
    return Application.objects.get(id=t.app.id).redaction


WRITES = [
    Write("create a key", lambda t: f"/apps/{t.app.id}/keys",
          lambda t: {"name": "persona-made"},
          lambda t: ApiKey.objects.filter(application=t.app, name="persona-made").exists()),
    Write("revoke a key", lambda t: f"/apps/{t.app.id}/keys/{t.key.id}/revoke",
          lambda t: {},
          lambda t: ApiKey.objects.get(id=t.key.id).revoked_at is not None),
    Write("add a member", lambda t: f"/apps/{t.app.id}/members/set",
          lambda t: {"username": "erin", "role": "viewer"},
          lambda t: Membership.objects.filter(application=t.app, user__username="erin").exists()),
    Write("change a role", lambda t: f"/apps/{t.app.id}/members/set",
          lambda t: {"username": t.member.username, "role": "admin"},
          lambda t: Membership.objects.get(application=t.app, user=t.member).role == "admin"),
    Write("remove a member", lambda t: f"/apps/{t.app.id}/members/{t.member.id}/remove",
          lambda t: {},
          lambda t: not Membership.objects.filter(application=t.app, user=t.member).exists()),
    Write("save retention settings", lambda t: f"/storage/apps/{t.app.id}/retention",
          lambda t: {"retention_days": "11"},
          lambda t: Application.objects.get(id=t.app.id).retention_days == 11),
    Write("save redaction rules", lambda t: f"/apps/{t.app.id}/redaction",
          lambda t: {"extra_keys": "persona_secret", "body_limit": "100"},
          lambda t: "persona_secret" in _policy(t).get("extra_keys", [])),
]  # fmt: skip

# Expected outcome per persona: "member" (sees shop), "outsider", "superuser", "anonymous".
PERSONAS = {"alice": "member", "bob": "member", "charlie": "outsider", "root": "superuser",
            "anonymous": "anonymous"}  # fmt: skip


def _target(app: Application, member_name: str) -> Target:
    now = timezone.now()
    session = Session.objects.create(application=app, key=f"{app.name}-run-7f3a", started_at=now)
    event = Event.objects.create(
        application=app, session=session, seq=1, ts=now, received_at=now, type="log",
        message=f"{app.name} checkout done", uid=f"{app.name}-uid-1", key="cart::total",
        correlation_id="order-77",  # the same id in both applications: chains must not mix
    )  # fmt: skip
    key = ApiKey.generate(app, name=f"{app.name} sender")[0]
    member = get_user_model().objects.create_user(member_name, password="password")
    Membership.objects.create(user=member, application=app, role=Membership.Role.VIEWER)
    return Target(app=app, session=session, event=event, key=key, member=member)


@pytest.fixture
def world(shop, other_app, alice, bob, charlie, django_user_model):
    django_user_model.objects.create_superuser("root", password="password")
    django_user_model.objects.create_user("erin", password="password")
    return {"shop": _target(shop, "dave"), "warehouse": _target(other_app, "frank")}


@pytest.fixture
def as_persona(client, world):
    def login(name: str):
        if name != "anonymous":
            client.force_login(get_user_model().objects.get(username=name))
        return client

    return login


def _may_see(persona: str, target_name: str) -> bool:
    kind = PERSONAS[persona]
    return kind == "superuser" or (kind == "member" and target_name == "shop")


@pytest.mark.parametrize("target_name", ["shop", "warehouse"])
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("row", READS, ids=lambda r: r.name)
def test_each_person_sees_exactly_their_applications(row, persona, target_name, world, as_persona):
    client = as_persona(persona)
    target = world[target_name]
    response = client.get(row.url(target))
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    body = raw.decode()
    if persona == "anonymous":
        if row.api:
            assert response.status_code == 401
        else:
            assert response.status_code == 302
            assert response["Location"].startswith("/login/")
    elif row.admin_only and persona == "bob" and target_name == "shop":
        assert response.status_code == 403
    elif _may_see(persona, target_name):
        assert response.status_code == 200, body[:300]
        assert row.shows(target) in body
    elif row.scoped:
        assert response.status_code == 404
    else:
        assert response.status_code == 200
        assert row.shows(target) not in body


@pytest.mark.parametrize("target_name", ["shop", "warehouse"])
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("row", WRITES, ids=lambda r: r.name)
def test_only_the_applications_admins_change_it(row, persona, target_name, world, as_persona):
    client = as_persona(persona)
    target = world[target_name]
    response = client.post(row.url(target), row.data(target))
    may_change = PERSONAS[persona] == "superuser" or (persona == "alice" and target_name == "shop")
    if may_change:
        assert response.status_code in (200, 302)
        assert row.done(target)
        return
    assert not row.done(target)
    if persona == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    elif _may_see(persona, target_name):
        assert response.status_code == 403  # a viewer sees the page but cannot change it
    else:
        assert response.status_code == 404


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_redaction_preview_is_open_to_members_only(persona, world, as_persona):
    client = as_persona(persona)
    response = client.post(
        f"/apps/{world['shop'].app.id}/redaction/preview",
        {"body_limit": "65536", "sample": '{"type": "log", "message": "password=hunter2"}'},
    )
    if persona == "anonymous":
        assert response.status_code == 302
    elif _may_see(persona, "shop"):
        assert response.status_code == 200
        assert response.json()["event"]["message"] == "password=[Filtered]"
    else:
        assert response.status_code == 404


def test_viewers_get_the_settings_pages_without_forms(world, as_persona):
    client = as_persona("bob")
    shop = world["shop"].app
    keys = client.get(f"/apps/{shop.id}/keys").content.decode()
    assert 'id="create-key"' not in keys and "Revoke" not in keys
    members = client.get(f"/apps/{shop.id}/members").content.decode()
    assert 'id="add-member"' not in members
    redaction = client.get(f"/apps/{shop.id}/redaction").content.decode()
    assert "<fieldset disabled>" in redaction and "Save rules" not in redaction
    assert 'id="read-only"' in redaction
