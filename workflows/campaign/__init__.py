"""Outbound campaigns: plan (leads CSV, phone number, cost), confirm, create exactly once; status, cancel.

- ``lifecycle``  ``load_leads`` (local checks, before any request), ``create`` (also ``run``), ``plan_campaign``,
                 ``status``, ``cancel``
- ``leads``      the leads CSV (numbers to E.164, variable values, per-row errors)
- ``phone``      picks the calling number from an id, E.164, a name or a description
"""

from __future__ import annotations

from workflows.campaign.lifecycle import (
    ESTIMATE_BASIS_CALLS,
    CampaignParams,
    CampaignPlan,
    CampaignResult,
    cancel,
    counters,
    create,
    is_final,
    load_leads,
    plan_campaign,
    status,
)

run = create  # the workflow's entry point, by the same name as the other workflows'

__all__ = ["ESTIMATE_BASIS_CALLS", "CampaignParams", "CampaignPlan", "CampaignResult", "cancel", "counters", "create",
           "is_final", "load_leads", "plan_campaign", "run", "status"]
