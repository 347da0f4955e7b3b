"""The pipeline from Python: run the stages into a run folder and read the report card.

Run it: ``llmkb examples run pipeline --profile quick``. The command ``llmkb pipeline`` does the
same from the shell; the home page shows this run's report card.
"""

# %% [markdown]
# # The whole pipeline, stage by stage
# Stages hand off through files: each one reads the folder of the stage before it and writes
# its own, beside the config it ran with. Running a stage again only needs those files.

# %%
# --8<-- [start:stages]
from llmkb.stages import stages

for stage in stages():
    print(f"{stage.name:10} needs {', '.join(stage.needs) or 'nothing':10} {stage.summary}")
# --8<-- [end:stages]
assert [s.name for s in stages()][:2] == ["data", "tokenizer"]

# %%
# --8<-- [start:run]
from llmkb.examples import context
from llmkb.pipeline import collect_card, report_markdown

ctx = context("pipeline")
for stage in stages():
    ctx.ensure(stage.name)  # runs the stage unless this run folder already has it
card = collect_card(ctx.run)
print(report_markdown(card))
for path in sorted(ctx.run.root.glob("*/*.json")):
    print(path.relative_to(ctx.run.root))
# --8<-- [end:run]
assert set(card["stages"]) == {s.name for s in stages()}
assert card["stages"]["tokenizer"]["roundtrip_ok"] is True
