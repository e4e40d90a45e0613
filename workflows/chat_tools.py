"""Workflows offered to the chat agent as tools: each runs the whole pipeline as one call.

The model chooses these arguments, so they are input like any other: a tool accepts only the keys
it declares (``QAParams(**args)`` would otherwise take ``recordings_dir`` or ``out`` too), and a call
that would write files on this machine (qa_grade's recordings, the report's files) is a write: the
folder must be inside the working directory or one the user named (``--write-dir``), then the gate
is asked for ``write_local_files`` (refused under ``--read-only``; ``--yes``, ``--allow
write_local_files`` or a yes at the prompt otherwise) before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import ApprovalRequired, ToolError
from agent.loop import LocalTool
from agent.policy import Access
from agent.runtime import Runtime
from agent.terminal import printable

LOCAL_WRITE = "write_local_files"  # the name the gate, --allow and the run log know a local write by


def declared_arguments(args: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """``args`` without nulls; a key the tool does not declare is an error the model is told about."""
    known = set(parameters.get("properties") or {})
    unknown = sorted(set(args) - known)
    if unknown:
        raise ToolError(f"unknown argument(s) {', '.join(map(repr, unknown))}; the tool takes "
                        f"{', '.join(sorted(known))}")
    return {k: v for k, v in args.items() if v is not None}


def confined_folder(rt: Runtime, folder: str) -> Path:
    """``folder`` resolved (symlinks followed) when inside the working directory or a ``--write-dir``."""
    roots = [Path.cwd(), *(Path(d).expanduser() for d in rt.settings.write_dirs)]
    target = (Path.cwd() / Path(folder).expanduser()).resolve()
    if any(target.is_relative_to(root.resolve()) for root in roots):
        return target
    raise ApprovalRequired(f"refused writing files to {printable(folder, one_line=True)}: it is outside the working "
                           "directory", hint="choose a folder inside it, or name this one with --write-dir",
                           tool=LOCAL_WRITE)


async def approve_files(rt: Runtime, tool: str, folder: str, files: str) -> None:
    """Confine ``folder``, then ask the gate to write ``files`` there (raises ``ApprovalRequired`` if not)."""
    target = confined_folder(rt, folder)
    await rt.hub.approve_local(LOCAL_WRITE, {"tool": tool, "folder": str(target), "files": files})


def qa_grade_tool(rt: Runtime) -> LocalTool:
    """``qa_grade``: the qa-grade pipeline (the same result as the command's ``--json`` envelope)."""

    async def handler(args: dict[str, Any]) -> dict[str, Any]:
        from workflows.qa import grade as qa_grade

        given = declared_arguments(args, parameters)
        params = qa_grade.QAParams(**{"recordings": "none", **given})
        params.validate()
        if params.recordings != "none":  # WAV files in ./recordings: a local write
            await approve_files(rt, "qa_grade", params.recordings_dir, f"{params.recordings} recordings (WAV)")
        result = await qa_grade.run(rt, params)
        return {**result.to_dict(), "status": result.status, "errors": result.errors}

    parameters = {
        "type": "object",
        "properties": {
            "assistant": {"type": "string", "description": "assistant id or exact whole name"},
            "last": {"type": "integer", "description": "how many newest ended calls (default 5)"},
            "since": {"type": "string", "description": "only calls within this window, e.g. 7d"},
            "metric": {"type": "string", "description": "scorecard or numeric output name"},
            "threshold": {"type": "number", "description": "fail below this (default 80)"},
            "recordings": {"type": "string", "enum": ["failing", "all", "none"],
                           "description": "save these calls' recordings under ./recordings (default none; "
                                          "writing files needs the user's approval)"},
        },
        "required": ["assistant"],
        "additionalProperties": False,
    }
    return LocalTool(
        name="qa_grade",
        description=(
            "Grade an assistant's newest ended calls on a scorecard or numeric structured output and explain "
            "where the assistant failed; optionally save recordings. Prefer this over listing calls yourself "
            "when asked to grade, audit or QA calls."
        ),
        parameters=parameters,
        handler=handler,
    )




def campaign_tool(rt: Runtime) -> LocalTool:
    """``campaign_create``: the campaign workflow (dry run by default: the plan, nothing created)."""

    async def handler(args: dict[str, Any]) -> dict[str, Any]:
        from workflows.campaign import lifecycle as campaign

        params = campaign.CampaignParams(**{k: v for k, v in args.items() if v is not None})
        return (await campaign.create(rt, params)).to_dict()

    return LocalTool(
        name="campaign_create",
        description=(
            "Plan (dry_run true) or create an outbound call campaign from a leads CSV file: resolves the "
            "assistant and the phone number (id, E.164, name, or a description like 'primary US toll-free'), "
            "validates the leads, estimates the cost. Always do a dry run first and show the plan to the user."
        ),
        parameters={
            "type": "object",
            "properties": {
                "name": {"type": "string"}, "assistant": {"type": "string"},
                "phone_number": {"type": "string"}, "leads": {"type": "string", "description": "CSV file path"},
                "region": {"type": "string"}, "start": {"type": "string", "description": "ISO 8601"},
                "max_duration": {"type": "string", "description": "e.g. 2h"},
                "dry_run": {"type": "boolean", "description": "true: plan only (default)"},
                "strict": {"type": "boolean"},
            },
            "required": ["name", "assistant", "phone_number", "leads"],
            "additionalProperties": False,
        },
        handler=lambda args: handler({"dry_run": True, **args}),
        access=Access.WRITE,
    )


def squad_tool(rt: Runtime) -> LocalTool:
    """``squad_create``: build (dry_run) or create a squad from member names and routes."""

    async def handler(args: dict[str, Any]) -> dict[str, Any]:
        from workflows import squad

        params = squad.SquadParams(name=args["name"], members=list(args.get("members") or []),
                                   routes=list(args.get("routes") or []), dry_run=bool(args.get("dry_run", True)))
        return (await squad.create(rt, params)).to_dict()

    return LocalTool(
        name="squad_create",
        description=("Create a squad of assistants that transfer calls to each other by name. members: assistant "
                     "ids or exact names, the first starts the call; routes: 'FROM -> TO: when ...'."),
        parameters={
            "type": "object",
            "properties": {"name": {"type": "string"}, "members": {"type": "array", "items": {"type": "string"}},
                           "routes": {"type": "array", "items": {"type": "string"}},
                           "dry_run": {"type": "boolean", "description": "true: show the body only (default)"}},
            "required": ["name", "members"],
            "additionalProperties": False,
        },
        handler=handler,
        access=Access.WRITE,
    )


def report_tool(rt: Runtime) -> LocalTool:
    """``report``: the analytics report (the same summary table as ``vapi-agent report``)."""
    parameters = {
        "type": "object",
        "properties": {
            "since": {"type": "string", "description": "window back from now, e.g. 7d, 24h (default 7d)"},
            "from": {"type": "string", "description": "window start, ISO 8601 (instead of since)"},
            "to": {"type": "string", "description": "window end, ISO 8601 (default now)"},
            "tz": {"type": "string", "description": "IANA time zone of the days (default UTC)"},
            "group_by": {"type": "string", "enum": ["assistant", "endedReason", "squad"]},
            "format": {"type": "string", "description": "files to write, e.g. md,html (needs out)"},
            "out": {"type": "string", "description": "folder for the files, inside the working directory"},
        },
        "additionalProperties": False,
    }

    async def handler(args: dict[str, Any]) -> dict[str, Any]:
        from workflows.report import pipeline as report

        names = {"from": "start", "to": "end", "format": "formats"}
        given = declared_arguments(args, parameters)
        params = report.ReportParams(**{names.get(k, k): v for k, v in given.items()})
        params.validate()
        formats = params.output_formats()
        if formats:  # report files: a local write
            await approve_files(rt, "report", params.out or ".", ", ".join(formats))
        return (await report.run(rt, params)).to_dict(compact=True)

    return LocalTool(
        name="report",
        description=(
            "Report calls, minutes, cost (with its breakdown), average duration, success rate and ended "
            "reasons per assistant (or ended reason, or squad) over a period, against the previous period of "
            "equal length, flagging groups that got worse. Prefer this over listing calls yourself for any "
            "question about volume, cost or outcomes over time. Optionally writes md/csv/html/json/png files "
            "(writing files needs the user's approval)."
        ),
        parameters=parameters,
        handler=handler,
    )


def workflow_tools(rt: Runtime) -> list[LocalTool]:
    """Every workflow tool the chat agent gets."""
    return [qa_grade_tool(rt), campaign_tool(rt), squad_tool(rt), report_tool(rt)]
