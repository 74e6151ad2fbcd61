"""The agent and supervisor web console: sign-in sessions, its handlers and static files."""
