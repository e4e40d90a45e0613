"""report: calls, minutes, cost and how calls ended, by assistant and day, against the previous period.

- ``pipeline``  ``run(rt, params) -> ReportResult``: window, source, cubes, tables, files
- ``params``, ``window``  the options and the period (time zones, ``--as-of``)
- ``data``      the intermediate cube, from Vapi's analytics or by folding paged calls
- ``tables``    every output table, computed from the cube by one pandas code path
- ``result``    ``ReportResult``; ``render`` and ``charts`` turn it into md/csv/html/json/png
"""

from __future__ import annotations

from workflows.report.params import FORMATS, ReportParams, parse_formats
from workflows.report.pipeline import run
from workflows.report.result import ReportResult, records

__all__ = ["FORMATS", "ReportParams", "ReportResult", "parse_formats", "records", "run"]
