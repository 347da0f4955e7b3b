"""Adding a note: what ``llmkb new-page`` writes, where the nav gets the page, and what it refuses.

Run it: ``llmkb examples run contributing --profile quick`` (or ``python examples/contributing.py``).
The Contributing page includes its sections. It scaffolds into a scratch copy of ``mkdocs.yml``,
so the project itself is left as it was.
"""

# %% [markdown]
# # Adding a note
# `llmkb new-page SECTION/SLUG` writes a page, its example and its test, and adds the page and the
# example's notebook to the nav. Here it runs on a scratch copy of the project's `mkdocs.yml`.

# %%
# --8<-- [start:scaffold]
import difflib
import shutil
import tempfile
from pathlib import Path

from llmkb.scaffold import new_page

scratch = Path(tempfile.mkdtemp())
shutil.copy("mkdocs.yml", scratch / "mkdocs.yml")  # examples run from the project folder
before = (scratch / "mkdocs.yml").read_text().splitlines()
for path in new_page(scratch, "beyond/mixture-of-experts"):
    print(f"wrote {path.relative_to(scratch)}")
after = (scratch / "mkdocs.yml").read_text().splitlines()
added = [
    line[1:]
    for line in difflib.unified_diff(before, after, lineterm="", n=0)
    if line.startswith("+") and not line.startswith("+++")
]
print("lines added to the nav:", *added, sep="\n")
# --8<-- [end:scaffold]
assert any(line.strip() == "- Mixture of experts: beyond/mixture-of-experts.md" for line in added)
assert len(added) == 2 and len(after) == len(before) + 2  # nothing else in mkdocs.yml moved

# %%
# --8<-- [start:refuse]
for name in ("beyond/mixture-of-experts", "beyond/Mixture_Of_Experts", "mixture-of-experts"):
    try:
        new_page(scratch, name)
    except ValueError as error:
        print(f"{name}: {str(error).replace(f'{scratch}/', '')}")
# --8<-- [end:refuse]
assert (scratch / "mkdocs.yml").read_text().splitlines() == after  # a refusal writes nothing
shutil.rmtree(scratch)
