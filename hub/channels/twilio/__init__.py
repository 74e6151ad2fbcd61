"""Twilio: SMS and WhatsApp, voice calls, the account's REST client, webhook signatures, media and business hours.
Adapters only translate: a verified webhook becomes an Inbound, an outbound message becomes a REST call."""
