"""Scripted workflows (qa-grade, campaign, squad, report) as plain async pipelines."""
