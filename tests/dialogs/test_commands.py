from __future__ import annotations

import pytest

from dialogs import (
    CommandError,
    CommandErrorKind,
    CommandName,
    ParsedCommand,
    Role,
    help_text,
    parse_command,
)

C = CommandName


def parsed(text: str, role: Role = Role.REQUESTER) -> ParsedCommand:
    result = parse_command(text, role)
    assert isinstance(result, ParsedCommand), result
    return result


def refused(text: str, role: Role = Role.REQUESTER) -> CommandError:
    result = parse_command(text, role)
    assert isinstance(result, CommandError), result
    return result


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("help", C.HELP),
        ("  HELP  ", C.HELP),
        ("help?", C.HELP),
        ("?", C.HELP),
        ("", C.HELP),
        ("request", C.REQUEST),
        ("New   Number", C.REQUEST),
        ("request form", C.REQUEST_FORM),
        ("Request Form", C.REQUEST_FORM),
        ("mine", C.MINE),
        ("/mine", C.MINE),
        ("numbers", C.NUMBERS),
        ("status", C.STATUS),
    ],
)
def test_commands_are_recognised_whatever_the_case_and_spacing(text: str, name: C) -> None:
    assert parsed(text).name is name


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("status PD-7K3Q", C.STATUS),
        ("Status pd-7k3q", C.STATUS),
        ("cancel 7K3Q", C.CANCEL),
        ("retry 7k3q.", C.RETRY),
        ("release PD-7K3Q", C.RELEASE),
        ("AUDIT 7k3q", C.AUDIT),
    ],
)
def test_request_ids_are_read_leniently(text: str, name: C) -> None:
    command = parsed(text)
    assert command.name is name
    assert command.request_id == "PD-7K3Q"


def test_status_without_an_id_is_allowed() -> None:
    assert parsed("status") == ParsedCommand(C.STATUS)


@pytest.mark.parametrize("command", ["cancel", "retry", "release", "audit"])
def test_a_missing_required_id_explains_the_usage(command: str) -> None:
    error = refused(command)
    assert error.kind is CommandErrorKind.MISSING_ID
    assert f"`{command} PD-7K3Q`" in error.message
    assert "mine" in error.suggestions


def test_a_malformed_id_is_refused_with_the_expected_shape() -> None:
    error = refused("status hello")
    assert error.kind is CommandErrorKind.BAD_ID
    assert "hello" in error.message
    assert "PD-7K3Q" in error.message


def test_request_keeps_its_one_shot_text_with_case_and_quotes() -> None:
    command = parsed('Request US 425 "Contoso Support"')
    assert command.name is C.REQUEST
    assert command.argument_text == 'US 425 "Contoso Support"'


def test_approvals_here_is_an_approver_command() -> None:
    assert parsed("approvals here", Role.APPROVER).name is C.APPROVALS_HERE
    assert refused("approvals here").kind is CommandErrorKind.NOT_ALLOWED
    assert refused("pending").kind is CommandErrorKind.NOT_ALLOWED
    assert parsed("pending", Role.APPROVER).name is C.PENDING


@pytest.mark.parametrize(
    ("typo", "meant", "suggestion"),
    [
        ("stauts PD-7K3Q", C.STATUS, "status PD-7K3Q"),
        ("mien", C.MINE, "mine"),
        ("hlep", C.HELP, "help"),
        ("reqeust US 425", C.REQUEST, "request US 425"),
        ("new numbr", C.REQUEST, "new number"),
        ("numbrs", C.NUMBERS, "numbers"),
        ("cancle 7K3Q", C.CANCEL, "cancel 7K3Q"),
    ],
)
def test_typos_get_a_did_you_mean_that_keeps_the_rest(typo: str, meant: C, suggestion: str) -> None:
    error = refused(typo)
    assert error.kind is CommandErrorKind.UNKNOWN
    assert error.did_you_mean is meant
    assert "Did you mean" in error.message
    assert error.suggestions[0] == suggestion


def test_a_typo_of_an_approver_command_is_suggested_only_to_approvers() -> None:
    assert refused("aprovals here", Role.APPROVER).did_you_mean is C.APPROVALS_HERE
    assert refused("aprovals here", Role.REQUESTER).did_you_mean is None


def test_gibberish_points_to_help_without_guessing() -> None:
    error = refused("make me a sandwich")
    assert error.did_you_mean is None
    assert "help" in error.message
    assert error.suggestions == ("help",)


def test_unknown_text_is_echoed_escaped() -> None:
    error = refused("[click](http://evil.example) <at>Everyone</at>")
    assert "[click]" not in error.message
    assert "<at>" not in error.message


def test_requester_help_lists_only_requester_commands() -> None:
    text = help_text(Role.REQUESTER)
    for usage in ("`request", "`status [ID]`", "`mine`", "`cancel ID`", "`retry ID`"):
        assert usage in text
    assert "`release ID`" in text
    assert "`pending`" not in text
    assert "`approvals here`" not in text


def test_approver_help_adds_approver_commands() -> None:
    text = help_text(Role.APPROVER)
    assert "`pending`" in text
    assert "`approvals here`" in text
    assert "registered" not in text


def test_help_tells_an_approver_how_to_register_the_approvers_channel() -> None:
    text = help_text(Role.APPROVER, approvals_channel_registered=False)
    assert "No approvers' channel is registered" in text
    assert "@mention me there with `approvals here`" in text


def test_requesters_are_not_told_about_registering_a_channel() -> None:
    text = help_text(Role.REQUESTER, approvals_channel_registered=False)
    assert "approvals here" not in text
