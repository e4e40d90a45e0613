"""Conversation templates and their rendering into timed turns, with optional failure injection.

A *template* (from ``sandbox.world.conversation_templates``) is a script of alternating customer and
assistant turns. ``render`` turns one template into a ``Conversation`` for one call: it fills the
``{variables}`` from a seeded ``random.Random``, prepends the assistant's greeting, cuts the script
to the call's ending (a customer hang-up drops the closing line, a silence time-out or pipeline
error stops early, a voicemail keeps only the voicemail message), optionally injects one failing
assistant turn, and lays the turns out in time so that they fill the call's duration exactly.

The ``Conversation`` is the generation-side truth: the call JSON and the WAV recordings are both
built from it, and the ground truth reads the failure (turn, kind, quote) from it directly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandbox.world.conversation_templates import BILLING, SUPPORT, TECHNICAL
from sandbox.world.conversation_templates_outreach import RENEWAL, ROUTER

COMPANY = "Brightline"
SCRIPTS = {"support": SUPPORT, "billing": BILLING, "renewal": RENEWAL, "router": ROUTER, "technical": TECHNICAL}
FAILURE_KINDS = ("interrupted", "ignored_complaint", "wrong_answer", "rude")
ENDINGS = ("full", "customer_hangup", "silence", "pipeline", "voicemail", "none")

FIRST_NAMES = (
    "Dana", "Raj", "Maria", "Tom", "Aisha", "Ken", "Lucia", "Omar", "Grace", "Pavel", "Nina", "Jamal",
    "Sofia", "Ethan", "Mei", "Carlos", "Hannah", "Ibrahim", "Zoe", "Victor", "Priya", "Luke", "Elena",
    "Samuel", "Fatima", "Noah", "Chloe", "Diego", "Yuki", "Owen",
)
LAST_NAMES = (
    "Lee", "Patel", "Garcia", "Novak", "Khan", "Tanaka", "Rossi", "Haddad", "Kim", "Ivanov", "Brown",
    "Okafor", "Silva", "Murphy", "Chen", "Lopez", "Schmidt", "Nguyen", "Walker", "Dubois",
)
PLANS = (("Fiber 300", "$49.99", "$64.99"), ("Fiber 500", "$64.99", "$79.99"), ("Fiber 1000", "$79.99", "$94.99"))
DEVICES = ("BL-300 gateway", "BL-700 router", "Eero 6 mesh router", "BL-900 Wi-Fi 7 gateway")
STREETS = ("Maple Avenue", "Harbor Street", "Oak Lane", "Cedar Court", "Hillcrest Drive", "Mill Road")
SLOTS = ("between 8 and 10 a.m.", "between 10 a.m. and noon", "between 1 and 3 p.m.", "between 3 and 5 p.m.")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Prefixes of failing assistant turns. Kept short so the quote is recognisably the assistant's fault.
RUDE = ("Look, I already explained how this works.", "I don't have all day, so let's move this along.",
        "That's not really my problem.")
INTERRUPT = ("Sorry, let me stop you there, I don't need all that.", "Okay, okay, I get it.")
IGNORE = ("Okay.", "Right, anyway.")
COMPLAINT = (" And honestly, this is the third time I've called about this and nobody has fixed it. I'm "
             "really upset.", " I have to say I'm really unhappy with how I've been treated so far.")
STILL_THERE = ("Are you still there? I haven't heard anything for a while, so I'll end the call now. "
               "Feel free to call back anytime.")

_VAR = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    """One conversation script for one assistant job (see ``sandbox.world.conversation_templates``)."""

    job: str
    key: str
    topic: str
    resolved: bool
    forwards: bool
    fail: int
    wrong: str
    summary: str
    turns: tuple[tuple[str, str], ...]  # (role "user" | "bot", text with {variables})

    def words(self) -> list[int]:
        """Word count of each turn, unfilled (good enough to estimate speaking time)."""
        return [len(text.split()) for _, text in self.turns]


def _parse(job: str, entry: tuple[str, str, bool, bool, int, str, str, str]) -> Template:
    key, topic, resolved, forwards, fail, wrong, summary, script = entry
    lines: list[str] = []
    for line in script.strip().splitlines():
        if line.startswith("   ") and lines:  # a continuation of the previous turn
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    turns: list[tuple[str, str]] = []
    for line in lines:
        prefix, _, text = line.partition(": ")
        role = {"U": "user", "A": "bot"}[prefix]
        expected = "user" if len(turns) % 2 == 0 else "bot"
        if role != expected:  # the timing model and failure injection rely on strict alternation
            raise ValueError(f"template {job}.{key}: turn {len(turns)} should be {expected}")
        turns.append((role, text.strip()))
    if turns[fail][0] != "bot" or fail >= len(turns) - 1:
        raise ValueError(f"template {job}.{key}: fail turn {fail} must be a non-final assistant turn")
    if turns[-1][0] != "bot":
        raise ValueError(f"template {job}.{key}: scripts end on the assistant's closing line")
    return Template(job, key, topic, resolved, forwards, fail, wrong, summary, tuple(turns))


TEMPLATES: tuple[Template, ...] = tuple(_parse(job, entry) for job, entries in SCRIPTS.items() for entry in entries)
JOB_TEMPLATES: dict[str, tuple[int, ...]] = {
    job: tuple(i for i, t in enumerate(TEMPLATES) if t.job == job) for job in SCRIPTS
}
MAX_TURNS = max(len(t.turns) for t in TEMPLATES)

# Speaking rates (words per second) and the mean pause; data.py uses the same numbers to size calls.
BOT_WPS = 2.7
USER_WPS = 2.4
MEAN_GAP_S = 0.8
LEAD_S = 1.0


def speech_seconds(role: str, words: int) -> float:
    """Natural speaking time of a turn of ``words`` words."""
    return max(0.8, words / (BOT_WPS if role == "bot" else USER_WPS))


@dataclass(frozen=True)
class Turn:
    """A spoken turn, timed in milliseconds from the call's ``startedAt``."""

    role: str  # "bot" | "user"
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Failure:
    """The injected failure: which turn (index into ``Conversation.turns``), what kind, its exact text."""

    turn: int
    kind: str
    quote: str


@dataclass(frozen=True)
class Conversation:
    """The rendered, timed conversation of one call."""

    turns: tuple[Turn, ...]
    failure: Failure | None
    topic: str
    summary: str
    variables: dict[str, str] = field(default_factory=dict)


def customer_name(rng: random.Random) -> tuple[str, str]:
    """A (first, last) customer name."""
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def variables(rng: random.Random, when: datetime, first: str, last: str, agent: str) -> dict[str, str]:
    """Every template variable, drawn deterministically from ``rng`` for a call placed at ``when``."""
    plan, price, new_price = rng.choice(PLANS)

    def day(delta: int) -> datetime:
        """``when`` moved by ``delta`` days."""
        return when + timedelta(days=delta)

    future = day(rng.randint(2, 9))
    renew = day(rng.randint(10, 40))
    past = day(-rng.randint(1, 5))
    return {
        "customer": first,
        "agent": agent,
        "company": COMPANY,
        "account": f"BL-{rng.randint(100000, 999999)}",
        "plan": plan,
        "price": price,
        "new_price": new_price,
        "device": rng.choice(DEVICES),
        "ticket": f"TK-{rng.randint(10000, 99999)}",
        "last4": f"{rng.randint(0, 9999):04d}",
        "amount": f"${rng.randint(45, 140)}.{rng.choice(('00', '49', '99'))}",
        "credit": f"${rng.randint(5, 30)}.{rng.choice(('00', '50'))}",
        "discount": f"${rng.choice((5, 10, 15))}",
        "email": f"{first.lower()}.{last.lower()}@example.com",
        "domain": "brightline mail dot com",
        "street": f"{rng.randint(12, 980)} {rng.choice(STREETS)}",
        "weekday": WEEKDAYS[past.weekday()],
        "date": f"{WEEKDAYS[future.weekday()]}, {future.strftime('%B')} {future.day}",
        "renew_date": f"{renew.strftime('%B')} {renew.day}",
        "slot": rng.choice(SLOTS),
    }


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders in ``text``."""
    return set(_VAR.findall(text))


def fill(text: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` placeholders; unknown names stay as written (user-supplied texts may have braces)."""
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def fill_liquid(text: str, values: dict[str, str]) -> str:
    """Fill the ``{{customer.name}}`` style placeholders Vapi assistants use in first messages."""
    return text.replace("{{customer.name}}", values["customer"])


def _script_turns(template: Template, ending: str, keep: int) -> list[tuple[str, str]]:
    turns = list(template.turns)
    if ending == "customer_hangup":
        return turns[:-1]
    if ending in ("silence", "pipeline"):
        return turns[:keep]
    if ending in ("voicemail", "none"):
        return []
    return turns


def _inject(
    turns: list[tuple[str, str]], index: int, kind: str, wrong: str, rng: random.Random
) -> tuple[str, str]:
    """Rewrite ``turns[index]`` (an assistant turn) and maybe its preceding customer turn; return both texts."""
    role, text = turns[index]
    user_role, user_text = turns[index - 1]
    if kind == "wrong_answer":
        text = wrong
    elif kind == "rude":
        text = f"{rng.choice(RUDE)} {text}"
    elif kind == "ignored_complaint":
        user_text = user_text + rng.choice(COMPLAINT)
        text = f"{rng.choice(IGNORE)} {text}"
    elif kind == "interrupted":
        words = user_text.split()
        user_text = " ".join(words[: max(3, len(words) * 3 // 5)]) + " —"
        text = f"{rng.choice(INTERRUPT)} {text}"
    else:
        raise ValueError(f"unknown failure kind {kind!r}")
    turns[index - 1] = (user_role, user_text)
    turns[index] = (role, text)
    return user_text, text


def render(
    template: Template,
    *,
    rng: random.Random,
    values: dict[str, str],
    greeting: str,
    voicemail: str,
    ending: str,
    keep: int,
    failure_kind: str | None,
    duration_ms: int,
    tail_ms: int,
) -> Conversation:
    """Render ``template`` into timed turns filling ``duration_ms`` (``startedAt`` to ``endedAt``).

    ``ending`` is one of ``ENDINGS``; ``keep`` is how many script turns survive a ``silence`` or
    ``pipeline`` ending; ``tail_ms`` is the quiet time after the last turn (the silence time-out, or
    the moment before hang-up). The failure turn index refers to the returned ``turns`` (the
    greeting is turn 0, so script turn ``i`` is turn ``i + 1``).
    """
    if ending == "none":
        return Conversation((), None, template.topic, fill(template.summary, values), values)
    script = [(role, fill(text, values)) for role, text in _script_turns(template, ending, keep)]
    failure: Failure | None = None
    if failure_kind is not None:
        if template.fail >= len(script):
            raise ValueError("the failure turn was cut from this conversation")
        _, quote = _inject(script, template.fail, failure_kind, fill(template.wrong, values), rng)
        failure = Failure(template.fail + 1, failure_kind, quote)
    if ending == "voicemail":
        spoken = [("bot", fill(voicemail, values))]
    else:
        spoken = [("bot", greeting), *script]
        if ending == "silence":
            spoken.append(("bot", STILL_THERE))
    timed = _lay_out(spoken, rng, duration_ms, tail_ms, voicemail=ending == "voicemail",
                     interrupt_at=failure.turn if failure and failure.kind == "interrupted" else None)
    return Conversation(tuple(timed), failure, template.topic, fill(template.summary, values), values)


def _lay_out(
    spoken: list[tuple[str, str]],
    rng: random.Random,
    duration_ms: int,
    tail_ms: int,
    *,
    voicemail: bool,
    interrupt_at: int | None,
) -> list[Turn]:
    """Assign start/end times: natural speaking times and pauses, scaled to fill the call exactly."""
    speech = [speech_seconds(role, len(text.split())) * rng.uniform(0.92, 1.08) for role, text in spoken]
    gaps = [rng.uniform(0.4, 1.2) for _ in spoken[1:]]
    lead = rng.uniform(0.6, 1.4)
    natural = sum(speech) + sum(gaps)
    if voicemail:
        # Ringing and the beep come first; the message is spoken at natural speed near the end.
        lead = max(0.5, duration_ms / 1000 - tail_ms / 1000 - natural)
    window = max(1.0, duration_ms / 1000 - tail_ms / 1000 - lead)
    scale = window / natural if natural > 0 else 1.0
    turns: list[Turn] = []
    cursor = lead * 1000
    for i, (role, text) in enumerate(spoken):
        start = cursor
        end = start + speech[i] * scale * 1000
        if interrupt_at == i and turns:
            # An interruption: the assistant starts talking before the customer has finished.
            start = max(turns[-1].start_ms + 200, turns[-1].end_ms - 300)
            end = start + speech[i] * scale * 1000
        turns.append(Turn(role, text, round(start), round(end)))
        cursor = end + (gaps[i] * scale * 1000 if i < len(gaps) else 0)
    last_end = duration_ms - 50
    if turns and turns[-1].end_ms > last_end:  # never run past the end of the call
        final = turns[-1]
        turns[-1] = Turn(final.role, final.text, min(final.start_ms, last_end - 200), last_end)
    return turns


def natural_seconds(template: Template, greeting_words: int, keep: int) -> float:
    """Expected length of a call playing the greeting plus ``keep`` script turns (no tail)."""
    words = template.words()[:keep]
    total = LEAD_S + speech_seconds("bot", greeting_words)
    for j, w in enumerate(words):
        total += MEAN_GAP_S + speech_seconds(template.turns[j][0], w)
    return total
