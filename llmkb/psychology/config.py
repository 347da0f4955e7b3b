"""The psychology stage's settings. Torch-free, so registering the stage stays cheap.

In: nothing. Out: :class:`PsychologyConfig`, saved as the stage's ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def check(self) -> PsychologyConfig:
        if not 1 <= self.min_right <= self.samples:
            raise ValueError(f"min_right must be between 1 and samples ({self.samples}), got {self.min_right}")
        if self.probe_people < 1:
            raise ValueError(f"probe_people must be >= 1, got {self.probe_people}")
        return self
