"""The members page: admins add people, change roles and remove them; an application
always keeps an admin."""

import pytest

from recorder.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


def test_an_admin_adds_an_existing_user_as_viewer(admin_client, shop, charlie):
    r = admin_client.post(f"/apps/{shop.id}/members/set", {"username": "charlie", "role": "viewer"})
    assert r.status_code == 302
    assert Membership.objects.get(application=shop, user=charlie).role == "viewer"
    page = admin_client.get(f"/apps/{shop.id}/members").content.decode()
    assert "charlie is now viewer" in page
    assert 'data-username="charlie"' in page


def test_adding_an_unknown_user_says_so(admin_client, shop):
    r = admin_client.post(
        f"/apps/{shop.id}/members/set", {"username": "nobody", "role": "viewer"}, follow=True
    )
    assert "There is no user named" in r.content.decode()


def test_an_unknown_role_is_refused(admin_client, shop, charlie):
    r = admin_client.post(
        f"/apps/{shop.id}/members/set", {"username": "charlie", "role": "owner"}, follow=True
    )
    assert "role must be one of" in r.content.decode()
    assert not Membership.objects.filter(user=charlie).exists()


def test_an_admin_promotes_and_removes(admin_client, shop, bob):
    admin_client.post(f"/apps/{shop.id}/members/set", {"username": "bob", "role": "admin"})
    assert Membership.objects.get(application=shop, user=bob).role == "admin"
    admin_client.post(f"/apps/{shop.id}/members/{bob.id}/remove")
    assert not Membership.objects.filter(application=shop, user=bob).exists()
    # bob, removed, now gets 404 for shop's pages.
    admin_client.force_login(bob)
    assert admin_client.get(f"/apps/{shop.id}/members").status_code == 404


def test_the_last_admin_cannot_leave_or_step_down(admin_client, shop, alice, bob):
    r = admin_client.post(f"/apps/{shop.id}/members/{alice.id}/remove", follow=True)
    assert "last admin" in r.content.decode()
    r = admin_client.post(
        f"/apps/{shop.id}/members/set", {"username": "alice", "role": "viewer"}, follow=True
    )
    assert "last admin" in r.content.decode()
    assert Membership.objects.get(application=shop, user=alice).role == "admin"
    # With a second admin, alice may step down.
    admin_client.post(f"/apps/{shop.id}/members/set", {"username": "bob", "role": "admin"})
    admin_client.post(f"/apps/{shop.id}/members/set", {"username": "alice", "role": "viewer"})
    assert Membership.objects.get(application=shop, user=alice).role == "viewer"


def test_an_admin_of_one_application_cannot_manage_another(admin_client, other_app, charlie):
    r = admin_client.post(
        f"/apps/{other_app.id}/members/set", {"username": "charlie", "role": "admin"}
    )
    assert r.status_code == 404
    assert not Membership.objects.filter(user=charlie).exists()
