"""History: the store behind every customer's timeline."""
