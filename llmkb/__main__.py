"""``python -m llmkb`` is the same as the ``llmkb`` command."""

from llmkb.cli import main

raise SystemExit(main())
