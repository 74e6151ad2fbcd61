"""`hub demo` and the tests' local peers: the runner, simulated customers, and local Twilio and Telegram simulators.
Production adapters never import from here."""
