"""Routing: which queue a conversation joins, and which agent it is offered to. The engine and its state backends,
and the hub's side: service (routing meets the store, the bus and the console), admin (overrides), calls (phone)."""
