"""The inbox's daily tools: labels (admin-defined, on conversations and customers), views (built-in and saved
filters, with counts), snooze (until a time or the customer's next message, woken by the store) and bulk actions."""
