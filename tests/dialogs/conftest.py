from __future__ import annotations

import pytest

from dialogs import DialogContext
from tests.dialogs.chat import Chat, make_context


@pytest.fixture
def ctx() -> DialogContext:
    return make_context()


@pytest.fixture
def chat(ctx: DialogContext) -> Chat:
    return Chat(ctx)
