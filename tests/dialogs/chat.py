"""A fake tenant offer and a chat driver that feeds turns through the real dialog.

``Chat`` keeps the dialog state the way the bot does, as JSON between turns, so every
dialog test also proves the state survives being stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from dialogs import (
    AreaCodeStock,
    CountryOffer,
    DialogContext,
    DialogState,
    Offer,
    Role,
    Turn,
    TurnResult,
    handle_turn,
    load_state,
)
from provisioning.domain import NumberType

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DOMAIN = "contoso.onmicrosoft.com"
TOLL_FREE = NumberType.AUTO_ATTENDANT_TOLL_FREE


def make_offer() -> Offer:
    return Offer(
        countries=(
            CountryOffer(
                iso_code="US",
                name="United States",
                area_codes=(
                    AreaCodeStock(area_code="206", available=8, city="Seattle"),
                    AreaCodeStock(area_code="425", available=12, city="Redmond"),
                    AreaCodeStock(area_code="212", available=0, city="New York"),
                    AreaCodeStock(area_code="800", available=5, number_type=TOLL_FREE),
                ),
            ),
            CountryOffer(
                iso_code="GB",
                name="United Kingdom",
                area_codes=(
                    AreaCodeStock(area_code="20", available=10, city="London"),
                    AreaCodeStock(area_code="161", available=4, city="Manchester"),
                ),
            ),
            CountryOffer(
                iso_code="DE",
                name="Germany",
                area_codes=(
                    AreaCodeStock(area_code="30", available=6, city="Berlin"),
                    AreaCodeStock(area_code="89", available=0, city="München"),
                ),
            ),
            CountryOffer(
                iso_code="AU",
                name="Australia",
                area_codes=(AreaCodeStock(area_code="2", available=6, city="Sydney"),),
            ),
            CountryOffer(
                iso_code="AT",
                name="Austria",
                area_codes=(AreaCodeStock(area_code="1", available=3, city="Vienna"),),
            ),
            CountryOffer(iso_code="FR", name="France", area_codes=()),
        )
    )


def make_context(
    taken: Iterable[str] = (),
    *,
    offer: Offer | None = None,
    idle_limit: timedelta = timedelta(minutes=30),
    approvals_channel_registered: bool = True,
) -> DialogContext:
    """A context whose taken UPNs are ``taken`` (a live set: add to it between turns)."""
    taken_set = taken if isinstance(taken, set) else {upn.casefold() for upn in taken}
    return DialogContext(
        offer=offer or make_offer(),
        upn_domain=DOMAIN,
        is_upn_taken=lambda upn: upn.casefold() in taken_set,
        idle_limit=idle_limit,
        approvals_channel_registered=approvals_channel_registered,
    )


class Chat:
    """One user in one conversation, talking to the dialog turn by turn."""

    def __init__(
        self,
        ctx: DialogContext,
        *,
        role: Role = Role.REQUESTER,
        in_channel: bool = False,
        stored: str | None = None,
        now: datetime = NOW,
    ) -> None:
        self.ctx = ctx
        self.role = role
        self.in_channel = in_channel
        self.stored = stored
        self.now = now
        self.last = TurnResult(None)

    @property
    def state(self) -> DialogState | None:
        return load_state(self.stored)

    def say(self, text: str, *, after: timedelta = timedelta(seconds=10)) -> TurnResult:
        return self._turn(
            Turn(now=self.now + after, text=text, role=self.role, in_channel=self.in_channel)
        )

    def click(
        self, data: Mapping[str, object], *, after: timedelta = timedelta(seconds=10)
    ) -> TurnResult:
        return self._turn(Turn(now=self.now + after, data=data, role=self.role))

    def _turn(self, turn: Turn) -> TurnResult:
        self.now = turn.now
        self.last = handle_turn(self.state, turn, self.ctx)
        self.stored = None if self.last.state is None else self.last.state.model_dump_json()
        return self.last

    @property
    def text(self) -> str:
        return "\n\n".join(reply.text for reply in self.last.replies)

    @property
    def suggestions(self) -> tuple[str, ...]:
        return tuple(s for reply in self.last.replies for s in reply.suggestions)
