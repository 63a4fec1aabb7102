"""Nothing is lost across a restart, and a throttled card update is sent again later."""

from __future__ import annotations

from tests.bot.teams import RITA, Teams, card_of, card_text, request_id_in


def shows(teams: Teams, activity_id: str | None, words: str) -> bool:
    return any(words in card_text(card_of(u)) for u in teams.connector.updates(activity_id))


async def test_a_restart_in_the_middle_of_the_dialog_resumes_it(teams: Teams) -> None:
    await teams.say(RITA, "request")
    [ask_area] = await teams.say(RITA, "United States")
    assert "Which area code in United States" in ask_area.body["text"]

    await teams.restart()

    [ask_name] = await teams.say(RITA, "425")
    assert "What should the resource account be called" in ask_name.body["text"]
    [summary] = await teams.say(RITA, "Contoso Support")
    summary_text = card_text(card_of(summary))
    assert "United States" in summary_text
    assert "425" in summary_text


async def test_cards_posted_before_a_restart_keep_updating(teams: Teams) -> None:
    await teams.say(RITA, 'request US 425 "Contoso Support"')
    [card] = await teams.say(RITA, "submit")
    request_id = request_id_in(card.body["text"])

    await teams.restart()
    await teams.say(RITA, f"cancel {request_id}")

    await teams.connector.wait_until(
        lambda: shows(teams, card.response_id, "Cancelled"),
        "the card posted before the restart shows the cancellation",
    )


async def test_a_429_on_a_card_update_is_retried_after_retry_after(teams: Teams) -> None:
    await teams.say(RITA, 'request US 425 "Contoso Support"')
    [card] = await teams.say(RITA, "submit")
    request_id = request_id_in(card.body["text"])
    teams.connector.throttle_next("PUT", count=1, retry_after="1")

    await teams.say(RITA, f"cancel {request_id}")

    await teams.connector.wait_until(
        lambda: shows(teams, card.response_id, "Cancelled"), "the card shows the cancellation"
    )
    [throttled] = teams.connector.throttled
    assert throttled.activity_id == card.response_id
    retried = [u for u in teams.connector.updates(card.response_id) if u.at > throttled.at]
    assert retried
    assert retried[0].at - throttled.at >= 0.9  # it waited for the Retry-After
