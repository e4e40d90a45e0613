"""Usage counters of one run: model tokens and cost, tool calls, rate-limit waits."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Usage:
    """Mutable counters, reported in every JSON envelope as ``usage``."""

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    tool_calls: int = 0
    rate_limit_waits: int = 0
    wait_seconds: float = 0.0

    def record_wait(self, seconds: float) -> None:
        """Count one rate-limit wait of ``seconds``."""
        self.rate_limit_waits += 1
        self.wait_seconds += seconds

    def to_dict(self) -> dict[str, float | int | None]:
        """The envelope's ``usage`` object (seconds and cost rounded for readability)."""
        out = asdict(self)
        out["wait_seconds"] = round(self.wait_seconds, 3)
        out["cost_usd"] = None if self.cost_usd is None else round(self.cost_usd, 6)
        return out
