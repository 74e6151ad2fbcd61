"""Customer segments: saved criteria over each customer's contact and order facts (criteria.py, with RFM scoring),
kept with their daily sizes (segment_store.py), served at /api/v1/segments (api.py). docs/reports.md has the rules."""
