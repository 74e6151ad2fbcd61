"""Reports: conversation events recorded by the inbound path, the outbox and routing (events.py), folded into hourly
and daily rollups (rollup.py) that the report queries read (query.py). docs/reports.md defines every figure."""
