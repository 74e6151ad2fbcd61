"""Customer satisfaction: a one-question survey after a resolve, on the customer's channel, and its answers."""
