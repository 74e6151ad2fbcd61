"""The adapters, one package per provider, each translating between its wire format and Inbound / Outbound; base.py
is the contract they share, registry.py what the core runs of them, handed in by the wiring."""
