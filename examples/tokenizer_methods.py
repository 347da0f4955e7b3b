"""Six tokenization methods re-measured on our corpus: BPE, WordPiece, Unigram, SentencePiece, character, word.

Run it: ``llmkb examples run tokenizer_methods --profile quick``. The tokenization page shows
the table it saves; every number in it comes from training the methods here.
"""

# %% [markdown]
# # Six ways to cut text into tokens
# Each method gets the same training text and the same vocabulary budget; we then count how
# well each compresses held-out English and how often it has to give up with an unknown token
# on held-out text in other languages.

# %%
# --8<-- [start:data]
from itertools import islice

from llmkb.corpus import load_split, multilingual_documents
from llmkb.examples import context

ctx = context("tokenizer_methods")
corpus_dir = ctx.ensure("data")  # the clean corpus: English only, after the language filter
budget = 400_000 if ctx.profile == "quick" else 2_000_000  # bytes of training text per method
train_texts, used = [], 0
for doc in load_split(corpus_dir, "train"):
    if used >= budget:
        break
    train_texts.append(doc["text"])
    used += len(doc["text"].encode())
heldout_english = [d["text"] for d in load_split(corpus_dir, "heldout")]
# Text in other languages the tokenizers never trained on: the filter removed it from the corpus.
heldout_other = [d["text"] for d in islice(multilingual_documents(seed=1), 70)]
print(f"train {used / 1e6:.2f} MB; held-out {len(heldout_english)} English and {len(heldout_other)} other documents")
# --8<-- [end:data]
assert heldout_english and heldout_other

# %%
# --8<-- [start:compare]
from llmkb.tokenizer.bpe import BPETokenizer
from llmkb.tokenizer.compare import MethodSpec, compare_methods, to_markdown


def train_ours(texts, vocab_size):
    return BPETokenizer.train(texts, vocab_size)  # anything with encode() and a vocab size fits


vocab_size = 1024 if ctx.profile == "quick" else 4096
ours = MethodSpec(
    train_ours, library="llmkb (pure Python)", granularity="byte-level subword", example_models="this site"
)
results = compare_methods(
    train_texts, heldout_english, heldout_other, vocab_size, extra={"BPE (llmkb, from scratch)": ours}
)
table = to_markdown(results)
print(table)
# --8<-- [end:compare]
ctx.save_text("methods.md", table)
by_method = {r.method: r for r in results}
assert len(results) == 8
assert by_method["BPE (llmkb, from scratch)"].unk_rate_other == 0.0  # bytes cover every language
assert by_method["Word-level"].unk_rate_other > by_method["WordPiece"].unk_rate_other
