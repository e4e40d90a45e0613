"""Schedules: vapi-agent commands on cron expressions, mirrored into the user's crontab.

- ``schedules``  the schedule file (source of truth), validation, the crontab mirror, job environments
- ``runner``     fires the schedules in the foreground (``schedule run``, for hosts without cron)
"""
