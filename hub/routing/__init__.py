"""Routing: which queue a conversation joins, and which agent it is offered to."""
