"""The served app through ``gradio_client``: the user id comes from the signed-in session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


USERS = {"ana": "ana-pass", "ben": "ben-pass"}  # as in conftest.USERS


def client(url: str, name: str):
    from gradio_client import Client

    return Client(url, auth=(name, USERS[name]), verbose=False)


def test_the_credentials_match_the_served_app(auth_users) -> None:
    assert auth_users == USERS


def test_signed_in_users_only_see_their_own_data(served_auth) -> None:
    url, layer = served_auth
    ana, ben = client(url, "ana"), client(url, "ben")
    table, status, box = ana.predict("client: British spelling", api_name="/add_preference")
    assert "Added preference" in status and box == ""
    assert [row[1] for row in table["data"]] == ["client: British spelling"]
    assert [p.text for p in layer.preferences("ana")] == ["client: British spelling"]

    table, status = ben.predict("", api_name="/search")
    assert table["data"] == [] and "ben" in status
    pid = layer.preferences("ana")[0].id
    table, status, _ = ben.predict(str(pid), api_name="/delete_preference")  # ana's id
    assert status.startswith("⚠️") and len(layer.preferences("ana")) == 1

    path, status = ana.predict(api_name="/export")
    assert "Exported" in status
    assert json.loads(Path(path).read_text(encoding="utf-8"))["user_id"] == "ana"


def test_wrong_password_is_refused(served_auth) -> None:
    from gradio_client import Client

    with pytest.raises(Exception, match="(?i)login|auth|credentials"):
        Client(served_auth[0], auth=("ana", "ben-pass"), verbose=False)


def test_chat_over_the_api(served_auth) -> None:
    ana = client(served_auth[0], "ana")
    history, message, status = ana.predict("Chat", "Write about owls", [], api_name="/chat")
    assert message == "" and "Answered" in status
    assert "Write about owls" in str(history[1]["content"])
