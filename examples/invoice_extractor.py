"""Invoice extractor: free-form invoice text in, a validated ``Invoice`` out, as JSON next to each file.

    AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b python examples/invoice_extractor.py invoices/

Every ``*.txt`` in the folder (or a built-in sample without one) goes to an agent with
``output_type=Invoice``: the model answers by calling the native ``final_result`` tool, and the answer is
validated by pydantic, cross-field check included (the lines must add up to the total). When they do not,
the model is told exactly that and answers again, in the same turn; after two more failed answers the file
is reported as failed and the others go on. Results are written atomically (``invoice.json`` appears
complete or not at all).
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from agentkit import Agent, Backend, backend_from_url
from agentkit.errors import OutputValidationError

SAMPLE = """ACME Tools Ltd — invoice 2026-117, 3 March 2026
Bill to: Northwind Garden Supplies
  40 x galvanised bolts M8 @ 0.35
  12 x hinge, heavy duty @ 4.20
Total due: 64.40 EUR
"""

SYSTEM = "You extract invoices. Copy names and numbers exactly as written; amounts are numbers without currency."


class Line(BaseModel):
    description: str
    quantity: int = Field(gt=0)
    unit_price: float = Field(ge=0)


class Invoice(BaseModel):
    """An invoice read from a document."""

    number: str
    issued: date
    seller: str
    buyer: str
    currency: str = Field(description="ISO 4217 code, e.g. EUR")
    lines: list[Line]
    total: float

    @model_validator(mode="after")
    def lines_add_up(self) -> Invoice:
        computed = round(sum(line.quantity * line.unit_price for line in self.lines), 2)
        if abs(computed - self.total) > 0.01:
            raise ValueError(f"the lines add up to {computed:.2f}, not the total {self.total:.2f}; check each line")
        return self


def build_agent(backend: Backend) -> Agent:
    return Agent(backend, system=SYSTEM, output_type=Invoice, output_retries=2, max_steps=5)


def extract(agent: Agent, text: str) -> Invoice:
    """One invoice; raises OutputValidationError when the model's answers never validate."""
    agent.reset()  # each document on its own: no earlier invoice in the conversation
    result = agent.run(f"Extract this invoice:\n\n{text}")
    if not result.ok:
        raise OutputValidationError(f"the run stopped early: {result.stop_reason}")
    invoice: Invoice = result.output
    return invoice


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    backend = backend_from_url(os.environ.get("AGENTKIT_BACKEND", "ollama://localhost:11434/gemma4:e4b"))
    agent = build_agent(backend)
    if argv:
        files = sorted(Path(argv[0]).glob("*.txt"))
    else:
        sample = Path(tempfile.mkdtemp()) / "sample.txt"
        sample.write_text(SAMPLE, encoding="utf-8")
        files = [sample]
    failed = 0
    try:
        for path in files:
            try:
                invoice = extract(agent, path.read_text(encoding="utf-8"))
            except OutputValidationError as exc:
                failed += 1
                print(f"{path.name}: failed: {exc}", file=sys.stderr)
                continue
            out = path.with_suffix(".json")
            write_atomically(out, invoice.model_dump_json(indent=2) + "\n")
            print(
                f"{path.name}: {invoice.number} from {invoice.seller}, {invoice.total:.2f} {invoice.currency} -> {out}"
            )
    finally:
        agent.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
