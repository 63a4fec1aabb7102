"""The user name the dialog proposes is the one the resource account is created with.

The chat and the workflow used to decide "which UPNs are taken" differently: the chat
counted requests pending approval, the workflow did not, so a second "Contoso Support"
was shown contoso.support2 and created as contoso.support when approved first.
"""

from __future__ import annotations

import asyncio
import re

from app import MICROSOFT_KEY
from provisioning.domain import NumberRequest, RequestStatus
from tests.bot.teams import ABE, RITA, SAM, Teams, card_of, card_text, request_id_in

_UPN = re.compile(r"[a-z0-9.]+@[a-z0-9.-]+")


async def _proposed_upn(teams: Teams, display_name: str, taken: str) -> str:
    await teams.say(RITA, "request")
    await teams.say(RITA, "United States")
    await teams.say(RITA, "425")
    [confirm] = await teams.say(RITA, display_name)
    # The card names the UPN it proposes, and the taken one it could not have.
    found = set(_UPN.findall(card_text(card_of(confirm))))
    assert taken in found
    [proposed] = found - {taken}
    return str(proposed)


async def _provisioned_upn(teams: Teams, request_id: str) -> str:
    async with asyncio.timeout(60):
        done = await teams.service.wait_for(
            request_id, {RequestStatus.COMPLETED, RequestStatus.FAILED}
        )
    assert done.status is RequestStatus.COMPLETED, done.failure
    assert done.result.upn is not None
    return done.result.upn


async def test_the_proposed_upn_is_created_even_when_an_open_request_holds_the_first_choice(
    teams: Teams,
) -> None:
    # Sam's request is still pending approval: it holds contoso.support, so Rita's
    # dialog must propose the next one, and her account must get exactly that.
    held = await teams.service.submit(
        SAM.person, NumberRequest(country="US", area_code="206", display_name="Contoso Support")
    )
    assert held.request is not None
    first_choice = held.request.result.upn
    assert first_choice is not None
    assert first_choice.startswith("contoso.support@")

    proposed = await _proposed_upn(teams, "Contoso Support", taken=first_choice)
    [submitted] = await teams.say(RITA, "submit")
    assert proposed in submitted.body["text"]
    rita_request = request_id_in(submitted.body["text"])

    # Rita's is approved first, while Sam's still waits.
    approved = await teams.service.approve(rita_request, ABE.person)
    assert approved.ok, approved.message
    created = await _provisioned_upn(teams, rita_request)

    assert created == proposed
    graph = teams.client.app[MICROSOFT_KEY].graph
    assert await graph.find_user(proposed) is not None
    # And Sam's request, approved later, gets the first choice it was promised.
    assert (await teams.service.approve(held.request.id, ABE.person)).ok
    assert await _provisioned_upn(teams, held.request.id) == first_choice


async def test_two_requests_for_one_name_submitted_at_once_get_different_upns(
    teams: Teams,
) -> None:
    spec = NumberRequest(country="US", area_code="206", display_name="Front Desk")
    outcomes = await asyncio.gather(
        *(teams.service.submit(person, spec) for person in (RITA.person, SAM.person) * 3)
    )
    upns = [o.request.result.upn for o in outcomes if o.request is not None]
    assert len(upns) == 6
    assert len(set(upns)) == 6
