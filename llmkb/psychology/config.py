"""The psychology stage's settings. Torch-free, so registering the stage stays cheap.

In: nothing. Out: :class:`PsychologyConfig`, :class:`SearchConfig` and :class:`SpellingConfig`, each
saved as its stage's ``config.json`` and checking its fields when built.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkb.checks import non_negative, positive, require


@dataclass
class PsychologyConfig:
    # -- hallucination: who is asked about (the mini-web has 100 people of each frequency)
    probe_people: int = 50  # "once" and "never" people interrogated for the refusal data; the rest are held out
    questions_per_person: int = 4  # one per fact (born, city, occupation, relation) when interrogating
    eval_questions_per_person: int = 2  # questions per held-out person when measuring
    # -- mitigation 1: interrogate, then train refusals
    samples: int = 4  # sampled replies per question when interrogating the model
    min_right: int = 1  # a question counts as known when at least this many samples are right
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive(self, "probe_people", "questions_per_person", "eval_questions_per_person", "samples")
        require(self, "min_right", 1 <= self.min_right <= self.samples, f"in [1, samples = {self.samples}]")


@dataclass
class SearchConfig:
    """Mitigation 2: the SFT chat model fine-tuned to call a search tool over the crawled text."""

    conversations: int = 6000  # training conversations (those longer than the context are left out)
    # Of the searches (tool conversations about invented people), those that find nothing and end in a refusal.
    no_results_share: float = 0.2
    # Of the conversations, questions the SFT model knows (interrogated like the refusal data: at least
    # min_right of samples sampled replies right), answered without a call: they teach when not to search.
    # (3 of 4 kept only 30 of the 360 questions in the default run: too few to keep the rest in memory.)
    memory_share: float = 0.2
    samples: int = 4
    min_right: int = 1
    max_steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3  # a fine-tune of the whole model: higher than SFT's, the skill is new
    #                   (scratch runs: 1e-3 copied names less)
    warmup_steps: int = 20
    context: int = 0  # 0: the SFT model's; larger lets longer conversations in (RoPE runs past the trained length)
    questions_per_person: int = 2  # held-out questions per person when measuring (the psychology stage's groups)
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive(self, "conversations", "max_steps", "batch_size", "lr", "questions_per_person", "samples")
        non_negative(self, "warmup_steps", "context")
        # A share of 1 would leave no search that finds anything: nothing to learn the tool from.
        require(self, "no_results_share", 0 <= self.no_results_share < 1, "in [0, 1)")
        # A share of 1 would leave no search at all.
        require(self, "memory_share", 0 <= self.memory_share < 1, "in [0, 1)")
        require(self, "min_right", 1 <= self.min_right <= self.samples, f"in [1, samples = {self.samples}]")


@dataclass
class SpellingConfig:
    """Counting and spelling: the SFT chat model fine-tuned on spelling and letter-count questions about corpus
    words."""

    train_words: int = (
        1000  # words taught (two questions each); scratch runs: 3,000 words in the same steps spelled fewer
    )
    held_out_words: int = 400  # never taught: the score that says whether spelling was learned or memorised
    min_count: int = 3  # a word must appear this often in the corpus
    # A chat model on a base with induction heads memorises more slowly: at 600 steps it spelled 4% of
    # the taught words (a text-only base: 90%), at 1,500 96% (held-out words 3% either way; measured).
    max_steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 20
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive(self, "train_words", "held_out_words", "min_count", "max_steps", "batch_size", "lr")
        non_negative(self, "warmup_steps")
