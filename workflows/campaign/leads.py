"""Leads CSV for a campaign: one customer per row, numbers normalised to E.164, bad rows reported.

Rules: a header row; ``number`` is required, ``name`` optional, every other column becomes the
customer's ``assistantOverrides.variableValues``. National numbers are read in ``region``. Duplicates
(after normalisation) are removed; invalid rows are skipped and reported with their line number and
reason. Empty cells of extra columns are left out of the variable values.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError


@dataclass
class Leads:
    """Accepted customers (``CreateCustomerDto`` dicts), rejected rows and removed duplicates."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The envelope's ``leads`` object."""
        return {"accepted": len(self.customers), "rejected": self.rejected, "duplicates": self.duplicates}


def normalise_number(raw: str, region: str) -> tuple[str | None, str | None]:
    """(E.164, None) for a valid number, else (None, reason)."""
    import phonenumbers

    text = (raw or "").strip()
    if not text:
        return None, "number is empty"
    try:
        parsed = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as exc:
        return None, f"{text!r} is not a phone number ({exc})"
    if not phonenumbers.is_valid_number(parsed):
        return None, f"{text!r} is not a valid number for its region"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


def read_leads(path: str | Path, *, region: str = "US") -> Leads:
    """Read and validate the CSV (see the module docstring); an unreadable file is a ConfigError."""
    import phonenumbers

    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"--region {region!r} is not a region code", hint="use an ISO code such as US, GB, DE")
    try:
        handle = Path(path).open(newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ConfigError(f"cannot read --leads {path}: {exc.strerror}", hint="check the path") from None
    leads = Leads()
    seen: dict[str, int] = {}
    with handle:
        reader = csv.DictReader(handle)
        headers = [h.strip() for h in reader.fieldnames or []]
        if "number" not in headers:
            raise ConfigError(f"--leads {path} has no 'number' column",
                              hint="the first row must be a header, e.g. number,name,plan")
        reader.fieldnames = headers
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    leads.rejected.append({"line": line, "reason": "more cells than header columns"})
                    continue
                number, reason = normalise_number(row.get("number") or "", region)
                if number is None:
                    leads.rejected.append({"line": line, "reason": reason})
                    continue
                if number in seen:
                    leads.duplicates.append({"line": line, "number": number, "duplicate_of": seen[number]})
                    continue
                seen[number] = line
                customer: dict[str, Any] = {"number": number}
                if (row.get("name") or "").strip():
                    customer["name"] = row["name"].strip()
                extra = {k: v.strip() for k, v in row.items()
                         if k not in ("number", "name") and k and v is not None and v.strip()}
                if extra:
                    customer["assistantOverrides"] = {"variableValues": extra}
                leads.customers.append(customer)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"--leads {path} is not a readable CSV: {exc}") from None
    return leads
