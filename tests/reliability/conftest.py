from tests.bot.conftest import bot_settings, teams

__all__ = ["bot_settings", "teams"]
