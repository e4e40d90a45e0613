"""Find the phone number a campaign dials from: by id, E.164, exact name, id prefix, or a description.

Order: id; E.164 (the argument normalised in ``region``); exact name (case-insensitive); a unique
prefix of an id; then a description such as "primary US toll-free": "toll-free" (or "local",
"mobile") is the number type the phone library reports, never a hard-coded prefix; a region code
("US", "GB"...) is the number's region; any other word (e.g. "primary") must appear in the number's
name. Ambiguity is exit 2 listing the choices.
"""

from __future__ import annotations

import re
from typing import Any

from agent.errors import ConfigError
from agent.vapi import by_id_prefix

_TYPE_WORDS = {"toll-free": "TOLL_FREE", "tollfree": "TOLL_FREE", "local": "LOCAL", "mobile": "MOBILE",
               "landline": "LOCAL", "geographic": "LOCAL"}


def _describe(number: dict[str, Any]) -> str:
    return f"{number.get('name') or '(no name)'} {number.get('number') or ''} (id {number.get('id')})"


def _kind_and_region(e164: str | None) -> tuple[set[str], str | None]:
    import phonenumbers

    if not e164:
        return set(), None
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return set(), None
    kind = phonenumbers.number_type(parsed)
    types = phonenumbers.PhoneNumberType
    kinds = set()
    if kind == types.TOLL_FREE:
        kinds.add("TOLL_FREE")
    if kind in (types.FIXED_LINE, types.FIXED_LINE_OR_MOBILE):
        kinds.add("LOCAL")
    if kind in (types.MOBILE, types.FIXED_LINE_OR_MOBILE):
        kinds.add("MOBILE")
    return kinds, phonenumbers.region_code_for_number(parsed)


def _choose(matches: list[dict[str, Any]], query: str, how: str) -> dict[str, Any]:
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(_describe(n) for n in matches)
    raise ConfigError(f"--phone-number {query!r} matches {len(matches)} numbers by {how}: {listing}",
                      hint="pass the id or the E.164 number", candidates=[n.get("id") for n in matches])


def resolve_phone_number(query: str, numbers: list[dict[str, Any]], *, region: str = "US") -> dict[str, Any]:
    """The one phone number ``query`` designates (see the module docstring)."""
    from workflows.campaign.leads import normalise_number

    by_id = [n for n in numbers if n.get("id") == query]
    if by_id:
        return by_id[0]
    e164, _ = normalise_number(query, region) if re.fullmatch(r"[\d\s()+.\-]{5,}", query) else (None, None)
    if e164:
        matches = [n for n in numbers if n.get("number") == e164]
        if matches:
            return _choose(matches, query, "number")
    exact = [n for n in numbers if str(n.get("name") or "").lower() == query.lower()]
    if exact:
        return _choose(exact, query, "name")
    by_prefix = by_id_prefix(numbers, query, "phone number")
    if by_prefix is not None:
        return by_prefix
    words = re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", query.lower())
    wanted_types = {_TYPE_WORDS[w] for w in words if w in _TYPE_WORDS}
    import phonenumbers

    regions = {w.upper() for w in words if w.upper() in phonenumbers.SUPPORTED_REGIONS and len(w) == 2}
    name_words = [w for w in words if w not in _TYPE_WORDS and w.upper() not in regions and w not in ("number", "line")]
    if not (wanted_types or regions or name_words):
        raise ConfigError(f"--phone-number {query!r} matches no number", hint=_listing(numbers))
    matches = []
    for number in numbers:
        kinds, number_region = _kind_and_region(number.get("number"))
        name = str(number.get("name") or "").lower()
        if wanted_types and not wanted_types <= kinds:
            continue
        if regions and number_region not in regions:
            continue
        if any(word not in name for word in name_words):
            continue
        matches.append(number)
    if not matches:
        raise ConfigError(f"--phone-number {query!r} matches no number", hint=_listing(numbers))
    return _choose(matches, query, "description")


def _listing(numbers: list[dict[str, Any]]) -> str:
    return "numbers: " + ("; ".join(_describe(n) for n in numbers) or "none")
