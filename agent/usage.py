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

    def record_model(self, input_tokens: int, output_tokens: int, price: tuple[float, float] | None, *,
                     calls: int = 1) -> None:
        """Count model calls and tokens; ``price`` is USD per 1M (input, output) tokens, None when unknown
        (an unknown price makes the run's cost unknown: ``cost_usd`` becomes None and stays so)."""
        self.model_calls += calls
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        if price is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += input_tokens / 1e6 * price[0] + output_tokens / 1e6 * price[1]

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
