"""Telegram: one or more bots; updates arrive by webhook, replies leave through the Bot API.
The adapter only translates between Telegram updates and the hub's words."""
