"""The fleet: one workflow (qa-grade, report) on every Vapi account of a platform, durably.

- ``job``       one account's job: mint its least-privilege server, run the pipeline, summarise, delete
- ``durable``   DBOS Transact: the queue partitioned by org, one workflow per (run, account), the engine
- ``recovery``  liveness per executor and the recovery of a dead process's jobs (DBOS internal API)
- ``result``, ``render``  the fleet result (worst first, totals) as a table and md/csv/html/json
- ``run``       ``run_fleet``, ``fleet_status``, ``fleet_resume``, ``worker``

Importing ``workflows.fleet.durable`` (or ``run``) loads DBOS: the CLI does it only for fleet commands.
"""
