"""Email: mailboxes read over IMAP, messages parsed into the new part and its quoted history, replies sent by SMTP.
The adapter only translates between mail and the hub's words."""
