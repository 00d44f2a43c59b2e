"""Constrained decoding: response_format schemas and forced tool calls as token masks.

The API layer turns a request into one grammar (grammar.py, with schema checks in
schemas.py; the call rules of each tool format live on the format, inference/tools/); the backend that runs the model turns
the grammar into an MLX logits processor (processor.py). Engine: llguidance.
"""
from .grammar import build_grammar
from .processor import GrammarLogitsProcessor, Grammars, GrammarViolation
from .schemas import ConstraintError, check_schema

__all__ = [
    "ConstraintError", "GrammarLogitsProcessor", "GrammarViolation", "Grammars", "build_grammar", "check_schema",
]
