"""Every case in corpus/*.json, sent to the real app over HTTP: no 5xx, nothing changed.

A case is ``name``, ``why``, optional ``headers`` (merged over a JSON content type; the
test client sends a loopback Host), and one of:

- ``body``: any JSON, serialized as is;
- ``base`` (``message``, ``invoke`` or ``conversationUpdate``): a valid Teams-shaped
  activity from ``user`` (RITA, ABE, SAM) in their personal chat, with the top-level keys
  in ``set`` replaced and those in ``delete`` removed;
- ``raw``: a string sent as is; ``raw_repeat`` repeats it that many times;
- ``nested_depth``: a JSON array nested that deep.

``{service_url}`` and ``{request_id}`` are substituted everywhere; ``setup`` may be
``pending_request`` (a request Rita submitted, awaiting approval). ``expect_status`` is an
int or a class like ``"4xx"``; ``expect_reply`` is text a chat reply must contain;
``expect_invoke_status`` is the ``statusCode`` inside an invoke response body, where
Teams' Universal Actions carry their errors; ``method`` defaults to POST. ``expect_unchanged``
asserts that an accepted case changed neither the store nor the audit (``"requests"``: the
requests only); ``value_depth`` nests the activity's ``value`` that deep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioning.domain import NumberRequest
from tests.bot.teams import ABE, RITA, SAM, Teams, TeamsUser, personal
from tests.provisioning.conftest import REQUESTER

CORPUS = Path(__file__).with_name("corpus")
USERS: dict[str, TeamsUser] = {"RITA": RITA, "ABE": ABE, "SAM": SAM}


def _cases() -> list[Any]:
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            cases.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return cases


def _body(teams: Teams, case: dict[str, Any]) -> bytes:
    if "nested_depth" in case:
        depth = int(case["nested_depth"])
        return b"[" * depth + b"]" * depth
    if "raw" in case:
        return str(case["raw"]).encode("utf-8") * int(case.get("raw_repeat", 1))
    if "base" in case:
        user = USERS[case.get("user", "RITA")]
        activity = teams._base(case["base"], user, personal(user))
        if case["base"] == "message":
            activity["text"] = "help"
        elif case["base"] == "invoke":
            activity["name"] = "adaptiveCard/action"
            activity["value"] = {"action": {"type": "Action.Execute", "verb": "refresh"}}
        elif case["base"] == "conversationUpdate":
            activity["membersAdded"] = [user.account]
        if "value_depth" in case:
            depth = int(case["value_depth"])
            activity["value"] = json.loads("[" * depth + "]" * depth)
        activity.update(case.get("set", {}))
        for key in case.get("delete", []):
            activity.pop(key, None)
        return json.dumps(activity).encode("utf-8")
    return json.dumps(case["body"]).encode("utf-8")


def _status_matches(status: int, expected: int | str) -> bool:
    if isinstance(expected, int):
        return status == expected
    return str(status)[0] == expected[0]


def _snapshot(teams: Teams) -> tuple[list[Any], list[Any]]:
    return teams.store.list_requests(limit=1000), teams.store.list_audit()


def test_the_corpus_is_big_enough_and_every_case_says_why() -> None:
    cases = [p.values[0] for p in _cases()]
    assert len(cases) >= 60
    assert all(case.get("why") for case in cases)
    assert len({(c["name"]) for c in cases}) == len(cases)


@pytest.mark.parametrize("case", _cases())
async def test_bad_input_is_refused_cleanly(teams: Teams, case: dict[str, Any]) -> None:
    substitutions = {"{service_url}": teams.service_url.rstrip("/")}
    if case.get("setup") == "pending_request":
        outcome = await teams.service.submit(
            REQUESTER, NumberRequest(country="US", area_code="425", display_name="Corpus Desk")
        )
        assert outcome.request is not None
        substitutions["{request_id}"] = outcome.request.id
    body = _body(teams, case)
    for placeholder, value in substitutions.items():
        body = body.replace(placeholder.encode(), value.encode())
    headers = {"Content-Type": "application/json", **case.get("headers", {})}
    before = _snapshot(teams)
    sent_before = len(teams.connector.sent)

    response = await teams.client.request(
        case.get("method", "POST"), "/api/messages", data=body, headers=headers
    )
    text = await response.text()

    assert response.status < 500, text
    assert _status_matches(response.status, case["expect_status"]), (response.status, text)
    assert "Traceback" not in text
    replies = teams.connector.sent[sent_before:]
    for reply in replies:
        assert "Traceback" not in json.dumps(reply.body)
    if "expect_reply" in case:
        assert any(case["expect_reply"] in str(r.body.get("text", "")) for r in replies), [
            r.body.get("text") for r in replies
        ]
    refused = response.status >= 400
    if "expect_invoke_status" in case:
        invoke = json.loads(text)
        assert _status_matches(invoke["statusCode"], case["expect_invoke_status"]), invoke
        assert invoke["statusCode"] < 500, invoke
        refused = invoke["statusCode"] >= 400
    if case.get("expect_unchanged") == "requests":
        # A refused attempt by a signed-in user is itself audited; the requests stay put.
        assert _snapshot(teams)[0] == before[0], "a refused action changed a request"
    elif refused or case.get("expect_unchanged"):
        assert _snapshot(teams) == before, "a refused request changed the store or the audit"
        assert replies == [], "a refused request still made the bot send something"
