"""llmkb: one tiny LLM built stage by stage, offline, with a page explaining each stage.

Stages hand off through files in ``runs/<name>/<stage>/``; ``llmkb pipeline`` runs them all.
"""

__version__ = "0.1.0"
