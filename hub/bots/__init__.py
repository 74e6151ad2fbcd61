"""Bots that answer first: a queue's bot gets each customer message (signed, Rasa's REST channel format) and its
answers go to the customer through the outbox, until it hands off to a person (docs/bots.md)."""
