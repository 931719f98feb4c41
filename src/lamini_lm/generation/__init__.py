"""Generation: the teacher client (the only module importing ``openai``), the exactly-once store, instruction
and response tasks, and parsing of the teacher's output."""

__all__: list[str] = []
