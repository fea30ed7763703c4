"""Who may see what: every URL and the WebSocket against every role, and origin checks."""

import asyncio
import logging
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import AsyncClient, Client

from sessions_app import control
from sessions_app.models import LiveSession, Note, TranscriptEntry
from sessions_app.protocol import CloseCode
from tests.conftest import login_cookie

ROLES = (
    "anonymous", "owner", "other_user", "inactive_user", "staff_without_permission",
    "staff_with_permission", "superuser",
)  # fmt: skip

# URL name -> expected status per role; LOGIN means a redirect to a login page.
# ``admin_export`` is the changelist's JSON export action (a POST); the rest are GETs.
LOGIN = 302
PAGES: dict[str, dict[str, int]] = {
    "share": {
        "anonymous": LOGIN, "owner": 200, "other_user": 200, "inactive_user": LOGIN,
        "staff_without_permission": 200, "staff_with_permission": 200, "superuser": 200,
    },
    "history": {
        "anonymous": LOGIN, "owner": 200, "other_user": 200, "inactive_user": LOGIN,
        "staff_without_permission": 200, "staff_with_permission": 200, "superuser": 200,
    },
    "transcript": {
        "anonymous": LOGIN, "owner": 200, "other_user": 404, "inactive_user": LOGIN,
        "staff_without_permission": 404, "staff_with_permission": 200, "superuser": 200,
    },
    "export_md": {
        "anonymous": LOGIN, "owner": 200, "other_user": 404, "inactive_user": LOGIN,
        "staff_without_permission": 404, "staff_with_permission": 200, "superuser": 200,
    },
    "export_json": {
        "anonymous": LOGIN, "owner": 200, "other_user": 404, "inactive_user": LOGIN,
        "staff_without_permission": 404, "staff_with_permission": 200, "superuser": 200,
    },
    "admin_usage": {
        "anonymous": LOGIN, "owner": LOGIN, "other_user": LOGIN, "inactive_user": LOGIN,
        "staff_without_permission": 403, "staff_with_permission": 200, "superuser": 200,
    },
    "admin_export": {
        "anonymous": LOGIN, "owner": LOGIN, "other_user": LOGIN, "inactive_user": LOGIN,
        "staff_without_permission": 403, "staff_with_permission": 200, "superuser": 200,
    },
    "admin_list": {
        "anonymous": LOGIN, "owner": LOGIN, "other_user": LOGIN, "inactive_user": LOGIN,
        "staff_without_permission": 403, "staff_with_permission": 200, "superuser": 200,
    },
    "admin_change": {
        "anonymous": LOGIN, "owner": LOGIN, "other_user": LOGIN, "inactive_user": LOGIN,
        "staff_without_permission": 403, "staff_with_permission": 200, "superuser": 200,
    },
    # Any staff member reaches the index; it lists only the models they may see.
    "admin_index": {
        "anonymous": LOGIN, "owner": LOGIN, "other_user": LOGIN, "inactive_user": LOGIN,
        "staff_without_permission": 200, "staff_with_permission": 200, "superuser": 200,
    },
    "admin_history": {
        "anonymous": LOGIN, "owner": LOGIN, "other_user": LOGIN, "inactive_user": LOGIN,
        "staff_without_permission": 403, "staff_with_permission": 200, "superuser": 200,
    },
    # Sessions are records: viewing them does not allow deleting one. Only a holder of
    # delete_livesession (here the superuser, as Django has it) may.
    "admin_delete": {
        "anonymous": LOGIN, "owner": LOGIN, "other_user": LOGIN, "inactive_user": LOGIN,
        "staff_without_permission": 403, "staff_with_permission": 403, "superuser": 200,
    },
}  # fmt: skip
# The share socket: any active, logged-in user may open their own sessions on it.
SOCKET = {
    "anonymous": CloseCode.UNAUTHENTICATED, "owner": "hello", "other_user": "hello",
    "inactive_user": CloseCode.UNAUTHENTICATED, "staff_without_permission": "hello",
    "staff_with_permission": "hello", "superuser": "hello",
}  # fmt: skip


def make_role(role: str, django_user_model: Any, owner: Any) -> Any:
    """The user acting in ``role`` (None for anonymous)."""
    create = django_user_model.objects.create_user
    match role:
        case "anonymous":
            return None
        case "owner":
            return owner
        case "other_user":
            return create("mallory", password="pw-12345678")
        case "inactive_user":
            return create("gone", password="pw-12345678", is_active=False)
        case "staff_without_permission":
            return create("helpdesk", password="pw-12345678", is_staff=True)
        case "staff_with_permission":
            staff = create("reviewer", password="pw-12345678", is_staff=True)
            staff.user_permissions.add(Permission.objects.get(codename="view_livesession"))
            return staff
        case "superuser":
            return django_user_model.objects.create_superuser("root", password="pw-12345678")
    raise AssertionError(role)


def url_of(name: str, session: LiveSession) -> str:
    """The path of a page of the matrix."""
    return {
        "share": "/",
        "history": "/sessions/",
        "transcript": f"/sessions/{session.pk}/",
        "export_md": f"/sessions/{session.pk}/export.md",
        "export_json": f"/sessions/{session.pk}/export.json",
        "admin_usage": "/admin/sessions_app/livesession/usage/",
        "admin_export": "/admin/sessions_app/livesession/",
        "admin_list": "/admin/sessions_app/livesession/",
        "admin_change": f"/admin/sessions_app/livesession/{session.pk}/change/",
        "admin_index": "/admin/",
        "admin_history": f"/admin/sessions_app/livesession/{session.pk}/history/",
        "admin_delete": f"/admin/sessions_app/livesession/{session.pk}/delete/",
    }[name]


@pytest.fixture
def owned_session(user: Any) -> LiveSession:
    """A session of the owner with one secret line and one secret note."""
    session = LiveSession.objects.create(user=user, model="m", response_modality="AUDIO")
    session.entries.create(sequence=1, role="user", source="typed", text="owner secret 42")
    session.notes.create(title="Owner note", body="owner note secret 43")
    return session


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_pages_by_role(role: str, django_user_model: Any, user: Any, owned_session: Any) -> None:
    actor = make_role(role, django_user_model, user)
    client = Client()
    if actor is not None:
        client.force_login(actor)
    for page, expected in PAGES.items():
        url = url_of(page, owned_session)
        if page == "admin_export":
            action = {"action": "export_json", "_selected_action": [str(owned_session.pk)]}
            response = client.post(url, action)
        else:
            response = client.get(url)
        assert response.status_code == expected[role], (role, page, response.status_code)
        if expected[role] == LOGIN:
            assert "/login/" in response["Location"]
        body = response.content.decode()
        if page == "admin_list" and expected[role] == 200:
            assert ("End live session now" in body) == (role == "superuser")
        if page == "admin_index" and expected[role] == 200:
            listed = "/admin/sessions_app/livesession/" in body
            assert listed == (role in {"staff_with_permission", "superuser"}), role
        readers = {"transcript", "export_md", "export_json", "admin_export", "admin_change"}
        # The delete confirmation names the rows that would go: transcript lines by their
        # text, notes by their title.
        line_readers = readers | {"admin_delete"}
        ok = expected[role] == 200
        assert ("owner secret 42" in body) == (ok and page in line_readers), (role, page)
        assert ("owner note secret 43" in body) == (ok and page in readers), (role, page)
    history = client.get("/sessions/").content.decode()
    assert (str(owned_session.pk) in history) == (role == "owner")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "deleted"),
    [("staff_without_permission", False), ("staff_with_permission", False), ("superuser", True)],
)
def test_only_a_holder_of_the_delete_permission_deletes_a_session(
    role: str, deleted: bool, django_user_model: Any, user: Any, owned_session: Any
) -> None:
    client = Client()
    client.force_login(make_role(role, django_user_model, user))
    confirm = client.post(url_of("admin_delete", owned_session), {"post": "yes"})
    assert confirm.status_code == (302 if deleted else 403)
    assert LiveSession.objects.filter(pk=owned_session.pk).exists() is not deleted
    if deleted:  # its transcript and notes went with it
        assert not TranscriptEntry.objects.filter(session_id=owned_session.pk).exists()
        assert not Note.objects.filter(session_id=owned_session.pk).exists()
        return
    bulk = {"action": "delete_selected", "_selected_action": [str(owned_session.pk)], "post": "yes"}
    response = client.post(url_of("admin_list", owned_session), bulk, follow=True)
    assert LiveSession.objects.filter(pk=owned_session.pk).exists()
    assert TranscriptEntry.objects.filter(session_id=owned_session.pk).count() == 1
    if role == "staff_with_permission":  # offered no such action
        assert "No action selected." in response.content.decode()
    else:
        assert response.status_code == 403


def staff_who_may_view(*, may_end: bool) -> Any:
    """A staff member who may view sessions and, with ``may_end``, end them."""
    staff = get_user_model().objects.create_user("operator", password="pw-12345678", is_staff=True)
    codenames = ["view_livesession", "end_livesession"] if may_end else ["view_livesession"]
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return staff


def check_end_now_outcome(
    may_end: bool,
    page: str,
    received: list[dict[str, Any]],
    requests: list[logging.LogRecord],
    session: LiveSession,
    user: Any,
    staff: Any,
) -> None:
    """What the end_now action said, sent to the session's group, and logged."""
    if not may_end:
        assert "No action selected." in page
        assert received == [{"type": "test.marker"}]
        assert requests == []
        return
    assert "Asked 1 live session(s) to end." in page
    assert received == [
        {
            "type": "session.end",
            "session_id": str(session.pk),
            "reason": "admin_ended",
            "message": "An administrator ended this session.",
        },
        {"type": "test.marker"},
    ]
    [request] = requests
    assert (request.session_id, request.user_id) == (str(session.pk), user.pk)  # type: ignore[attr-defined]
    assert request.ev_admin_id == staff.pk  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("may_end", [False, True])
async def test_end_now_is_sent_only_by_staff_with_the_end_permission(
    may_end: bool, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The session's group on the channel layer is watched by a channel of the test's own.

    Nothing is mocked: the admin view runs through Django's ASGI handler and sends with
    the real channel layer. A marker sent to the group after the request arrives after
    anything the request sent, so "nothing was sent" is seen, not waited out.
    """
    caplog.set_level(logging.INFO)
    staff = await database_sync_to_async(staff_who_may_view)(may_end=may_end)
    session = await database_sync_to_async(LiveSession.objects.create)(
        user=user, model="m", response_modality="AUDIO"
    )
    layer = get_channel_layer()
    assert layer is not None
    group = control.session_group(session.pk)
    watcher = await layer.new_channel()
    await layer.group_add(group, watcher)
    client = AsyncClient()
    await client.aforce_login(staff)
    changelist = url_of("admin_list", session)
    listing = (await client.get(changelist)).content.decode()
    assert ('value="end_now"' in listing) is may_end

    action = {"action": "end_now", "_selected_action": [str(session.pk)], "index": "0"}
    response = await client.post(changelist, action, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    await layer.group_send(group, {"type": "test.marker"})
    received = [await asyncio.wait_for(layer.receive(watcher), 5)]
    if may_end:
        received.append(await asyncio.wait_for(layer.receive(watcher), 5))
    await layer.group_discard(group, watcher)

    requests = [r for r in caplog.records if getattr(r, "event", None) == "session_end_requested"]
    check_end_now_outcome(may_end, page, received, requests, session, user, staff)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
async def test_socket_by_role(role: str, django_user_model: Any, user: Any) -> None:
    from assistant_site.asgi import application

    actor = await database_sync_to_async(make_role)(role, django_user_model, user)
    headers = [(b"origin", b"http://testserver")]
    if actor is not None:
        cookie = await database_sync_to_async(login_cookie)(actor)
        headers.append((b"cookie", cookie.encode()))
    ws = WebsocketCommunicator(application, "/ws/share/", headers=headers)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    output = await ws.receive_output(5)
    if SOCKET[role] == "hello":
        assert '"type":"hello"' in output["text"]
    else:
        assert (output["type"], output["code"]) == ("websocket.close", SOCKET[role])
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, False),
        (b"http://evil.example", False),
        (b"http://testserver.evil.example", False),
        (b"null", False),
        (b"http://testserver", True),
        (b"http://localhost:8000", True),
    ],
)
async def test_cross_origin_handshakes_are_refused(
    origin: bytes | None, accepted: bool, user: Any
) -> None:
    from assistant_site.asgi import application

    cookie = await database_sync_to_async(login_cookie)(user)
    headers = [(b"cookie", cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    ws = WebsocketCommunicator(application, "/ws/share/", headers=headers)
    connected, _ = await ws.connect(timeout=5)
    assert connected is accepted
    if accepted:
        assert '"type":"hello"' in (await ws.receive_output(5))["text"]
    await ws.disconnect()
