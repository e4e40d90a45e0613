"""Who speaks on a live call: a ``Persona`` for any assistant in the workspace's current state.

Generated assistants keep their generation parameters (job, persona name, failure rate); assistants
created through the API talk like the closest job by name (billing, renewal, router, technical,
else support). Which structured outputs and scorecards apply is read from the workspace *now*, so a
scorecard created before a call grades that call, as on Vapi.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.world.callgen import Persona
from sandbox.world.conversations import COMPANY
from sandbox.world.entities import ASSISTANTS, GREETINGS, PROMPTS, VOICEMAIL, Catalog

_JOB_WORDS = (("bill", "billing"), ("renew", "renewal"), ("outreach", "renewal"), ("route", "router"),
              ("front", "router"), ("desk", "router"), ("tech", "technical"))


def _job_for(name: str) -> str:
    lowered = name.lower()
    return next((job for word, job in _JOB_WORDS if word in lowered), "support")


def persona_of(assistant: Mapping[str, Any], store: Mapping[str, Mapping[str, dict[str, Any]]],
               catalog: Catalog) -> Persona:
    """The persona of ``assistant`` (a stored or transient assistant; transient ones have id "")."""
    assistant_id = str(assistant.get("id") or "")
    generated = next((s for s in ASSISTANTS if catalog.assistant_ids[s.key] == assistant_id), None)
    if generated is not None and generated.job is not None:
        job, agent, outbound, fail_rate = generated.job, generated.agent, generated.outbound, generated.fail_rate
    else:
        job = _job_for(str(assistant.get("name") or ""))
        agent, outbound, fail_rate = "Alex", job == "renewal", 0.06
    messages = (assistant.get("model") or {}).get("messages") or []
    prompt = next((m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "system"), None)
    plan = assistant.get("artifactPlan") or {}
    output_keys = tuple(
        key for key, output_id in catalog.output_ids.items()
        if output_id in store["structured_outputs"]
        and ((bool(assistant_id) and assistant_id in (store["structured_outputs"][output_id].get("assistantIds") or []))
             or output_id in (plan.get("structuredOutputIds") or []))
    )
    cards = tuple(
        card for card in store["scorecards"].values()
        if (bool(assistant_id) and assistant_id in (card.get("assistantIds") or []))
        or card["id"] in (plan.get("scorecardIds") or [])
    )
    return Persona(
        assistant_id=assistant_id,
        name=str(assistant.get("name") or ""),
        job=job,
        agent=agent,
        greeting=str(assistant.get("firstMessage") or GREETINGS[job].format(company=COMPANY, agent=agent)),
        voicemail=str(assistant.get("voicemailMessage")
                      or VOICEMAIL.replace("{agent}", agent).replace("{company}", COMPANY)),
        prompt=str(prompt or PROMPTS[job].format(company=COMPANY, agent=agent)),
        outputs=output_keys,
        outbound=outbound,
        fail_rate=fail_rate,
        scorecards=cards,
    )
