"""qa-grade: grade an assistant's latest calls on a metric, fetch failing recordings, explain the failures.

- ``grade``     ``run(rt, params) -> QAResult``: the pipeline (calls, metric, recordings, checkpoints)
- ``metric``    which scorecard metric or structured output to grade on
- ``analysis``  the model's findings for one failing call, validated against its transcript
- ``render``    the terminal table and the markdown report
"""

from __future__ import annotations

from workflows.qa.grade import QAParams, QAResult, run

__all__ = ["QAParams", "QAResult", "run"]
