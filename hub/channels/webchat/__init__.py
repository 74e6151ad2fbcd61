"""Web chat: the embeddable widget (static/), visitor sockets and their identities.
The adapter only translates between the widget's frames and the hub's words."""
