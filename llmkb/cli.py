"""The ``llmkb`` command: one subcommand per stage, plus pipeline, examples, docs, doctor, bench.

In: command-line arguments. Out: whatever the subcommand writes (run folders, the site, a report).

    llmkb pipeline [--run NAME] [--profile quick|default|gpu] [--jobs N]
    llmkb data | tokenizer | pretrain | sft | reward | ppo | dpo | grpo | psychology | search | spelling
        (every registered stage) [--run NAME] [--profile ...] [--set FIELD=VALUE ...] [--FIELD-NAME VALUE ...]
        [--out DIR]
    torchrun --nproc_per_node N -m llmkb -- pretrain [--run NAME]
    llmkb quantize | eval [--run NAME] [--model DIR] [--out results.json]
    llmkb generate [--run NAME] [--model DIR] PROMPT... [--stream]
        [--temperature T --top-k K --top-p P --num-beams N ...]
    llmkb chat [--run NAME] [--model DIR] [--system TEXT] [generation options]   (the SFT model once it exists)
    llmkb examples [list] | llmkb examples run NAME [--profile quick]
    llmkb docs build | serve [--profile ...] [--port 8000]
    llmkb new-page SECTION/SLUG [--root DIR]   (a page, its example and test, its nav entries)
    llmkb doctor
    llmkb bench tokenizer [--megabytes 10] [--vocab-size 4096] [--repeat 2] [--out bench.json]
    llmkb bench data [--pages 3000] [--out bench.json]
    llmkb bench inference [--run default] [--repeat 3] [--threads 1] [--out bench.json]
    llmkb bench pretrain [--run default] [--steps 200] [--warmup 20] [--repeat 3] [--threads 1] [--out bench.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from llmkb.stages import PROFILES, RunDir, Stage, StageStopped, parse_override, parse_value, stages, type_name


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", default=None, help="run name: artifacts go to runs/<run>/ (default: the profile's name)"
    )
    parser.add_argument("--runs-root", default="runs", help="folder that holds the runs (default: runs)")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="default",
        help="quick (tests, CI), default (the main job, 2-core CPU) or gpu (one large GPU)",
    )


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _run_dir(args) -> RunDir:
    return RunDir.named(args.run or args.profile, args.runs_root)


def _generation_options(parser: argparse.ArgumentParser) -> None:
    """The model folder and the GenerationConfig fields (llmkb.inference.generate), for generate and chat."""
    parser.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="a Hugging Face model folder (default: the run's base model; chat: its SFT model once trained)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; > 0: sample")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0: off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (1: off)")
    parser.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (1: off)")
    parser.add_argument("--num-beams", type=int, default=1, help="> 1: beam search (greedy beams)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="end the text at TEXT (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="the same seed gives the same sample")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole sequence at every step (slow)")


def _field_flags(stage: Stage) -> list[tuple[str, dataclasses.Field, bool]]:
    """(flag, field, repeatable) for each config field a flag can set: ``--field-name VALUE``; a list or
    tuple field takes one item per flag (``seed_urls``: ``--seed-url URL``, repeatable); dicts only by ``--set``."""
    hints = typing.get_type_hints(stage.config_cls)
    names = {f.name for f in dataclasses.fields(stage.config_cls)}
    flags = []
    for f in dataclasses.fields(stage.config_cls):
        origin = typing.get_origin(hints[f.name])
        if origin is dict:
            continue
        repeatable = origin in (list, tuple)
        name = f.name[:-1] if repeatable and f.name.endswith("s") and f.name[:-1] not in names else f.name
        flags.append(("--" + name.replace("_", "-"), f, repeatable))
    return flags


def _default_of(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _stage_parser(sub, stage: Stage) -> argparse.ArgumentParser:
    """``llmkb <stage>``: the run options, ``--set FIELD=VALUE``, ``--out DIR`` and a flag per config field."""
    p = sub.add_parser(stage.name, help=stage.summary, description=stage.summary)
    _run_options(p)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        dest="set_fields",
        help="set any config field (repeatable), read as the field's type; lists comma-separated; none for None",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help=f"write to DIR/{stage.name}/ instead of runs/<run>/{stage.name}/"
    )
    hints = typing.get_type_hints(stage.config_cls)
    fields = p.add_argument_group(f"{stage.config_cls.__name__} fields (defaults before the profile's own)")
    for flag, f, repeatable in _field_flags(stage):
        kind = typing.get_args(hints[f.name])[0] if repeatable else hints[f.name]
        fields.add_argument(
            flag,
            action="append" if repeatable else "store",
            default=argparse.SUPPRESS,
            dest="field:" + f.name,
            metavar=type_name(kind).upper().replace(" ", ""),
            help=f"{f.name} ({type_name(hints[f.name])}, default {_default_of(f)!r})"
            + ("; repeatable" if repeatable else ""),
        )
    return p


def stage_overrides(stage: Stage, args: argparse.Namespace) -> dict:
    """The config fields the command line sets: the per-field flags, then ``--set`` (which wins)."""
    hints = typing.get_type_hints(stage.config_cls)
    overrides = {}
    for key, raw in vars(args).items():
        if not key.startswith("field:"):
            continue
        name = key.removeprefix("field:")
        annotation = hints[name]
        try:
            if isinstance(raw, list):  # a repeatable flag: one item each
                item = typing.get_args(annotation)[0]
                values = [parse_value(item, text) for text in raw]
                overrides[name] = values if typing.get_origin(annotation) is list else tuple(values)
            else:
                overrides[name] = parse_value(annotation, raw)
        except ValueError as e:
            raise ValueError(
                f"stage {stage.name!r}: field {name} is {type_name(annotation)}; cannot read {raw!r} as one"
            ) from e
    overrides.update(parse_override(stage, text) for text in args.set_fields)
    return overrides


def print_results(results, out: str | None = None, markdown=None) -> None:
    """Print ``results`` as JSON (and ``markdown(results)`` when given); write the JSON to ``out`` too when set."""
    print(json.dumps(results, indent=2))
    if markdown is not None:
        print(markdown(results))
    if out:
        from llmkb.io import write_json

        write_json(out, results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmkb", description="Build a tiny LLM stage by stage, and the site that explains it."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pipeline", help="run every stage on the embedded default and print the report card")
    _run_options(p)
    p.add_argument(
        "--jobs",
        type=_at_least_one,
        default=None,
        metavar="N",
        help="stages run at once once their inputs exist (default: 2 on 2+ cores, else 1)",
    )

    for stage in stages():  # one subcommand per registered stage, its options from its config dataclass
        _stage_parser(sub, stage)

    for name, help_text in (
        ("quantize", "int8 and 4-bit weights for the base model: size and perplexity of each method"),
        ("eval", "perplexity on held-out text and exact match on arithmetic"),
    ):
        p = sub.add_parser(name, help=help_text)
        _run_options(p)
        p.add_argument(
            "--model", default=None, metavar="DIR", help="a Hugging Face model folder (default: the run's base model)"
        )
        p.add_argument("--out", default=None, metavar="FILE", help="also write the results as JSON")

    p = sub.add_parser("generate", help="continue prompts with the base model: greedy, sampling or beam search")
    _run_options(p)
    _generation_options(p)
    p.add_argument("prompt", nargs="+", help="one or more prompts, generated as one batch")
    p.add_argument("--stream", action="store_true", help="print the text as it is generated (one prompt)")

    p = sub.add_parser("chat", help="chat with the model in the terminal (Ctrl-D or Ctrl-C to leave)")
    _run_options(p)
    _generation_options(p)
    p.add_argument("--system", default=None, help="a system message to start the conversation with")

    p = sub.add_parser("examples", help="list the page examples, or run one")
    ex = p.add_subparsers(dest="action")
    ex.add_parser("list", help="list the examples and their titles")
    r = ex.add_parser("run", help="run one example as a script, as a reader would")
    r.add_argument("name")
    _run_options(r)

    p = sub.add_parser("docs", help="build the site with real outputs, or build and serve it")
    p.add_argument("action", choices=["build", "serve"])
    _run_options(p)
    p.add_argument("--site-dir", default="site")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--force", action="store_true", help="rerun every example even if its inputs did not change")

    p = sub.add_parser(
        "new-page", help="scaffold a note: docs/SECTION/SLUG.md, its example, its test and its nav entries"
    )
    p.add_argument(
        "page", metavar="SECTION/SLUG", help="e.g. beyond/mixture-of-experts (lowercase letters, digits, hyphens)"
    )
    p.add_argument("--root", default=".", help="the project folder that holds mkdocs.yml (default: the current one)")

    sub.add_parser("doctor", help="versions, device, and what is missing")

    p = sub.add_parser("bench", help="speed benchmarks that write JSON")
    p.add_argument("what", choices=["tokenizer", "data", "pretrain", "inference"])
    _run_options(p)
    p.add_argument("--steps", type=int, default=200, help="pretrain: optimizer steps per training loop")
    p.add_argument("--warmup", type=int, default=20, help="pretrain: first steps left out of the timing")
    p.add_argument("--threads", type=int, default=1, help="pretrain, inference: torch threads")
    p.add_argument("--new-tokens", type=int, default=256, help="inference: tokens generated per prompt")
    p.add_argument(
        "--draft-steps", type=int, default=300, help="inference: training steps of the speculative draft model"
    )
    p.add_argument("--megabytes", type=float, default=10.0, help="tokenizer: corpus size to benchmark on")
    p.add_argument("--pages", type=int, default=3000, help="data: size of the mini-web to crawl and filter")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each measurement (tokenizer, pretrain: the fastest; inference: the median)",
    )
    p.add_argument("--out", default=None, help="write the results as JSON here too")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except StageStopped as e:  # asked for: not an error
        print(f"llmkb {args.command}: {e}", file=sys.stderr)
        return 0
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"llmkb {args.command}: error: {e}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    if args.command == "pipeline":
        from llmkb.pipeline import run_pipeline

        run_pipeline(_run_dir(args), args.profile, jobs=args.jobs)
    elif hasattr(args, "set_fields"):  # a stage's subcommand
        from llmkb.stages import get_stage, run_stage

        stage = get_stage(args.command)
        run = RunDir(Path(args.out)) if args.out else _run_dir(args)
        print_results(run_stage(stage.name, run, args.profile, **stage_overrides(stage, args)))
    elif args.command in ("quantize", "eval"):
        results = _measure_model(args)
        if args.out:
            from llmkb.io import write_json

            write_json(args.out, results)
    elif args.command in ("generate", "chat"):
        _generate(args)
    elif args.command == "examples":
        return _examples(args)
    elif args.command == "docs":
        from llmkb import docs_site

        site = docs_site.build(
            Path.cwd(), Path(args.site_dir), args.profile, args.run, Path(args.runs_root), force=args.force
        )
        print(f"built {site}")
        if args.action == "serve":
            docs_site.serve(site, port=args.port)
    elif args.command == "new-page":
        from llmkb.scaffold import new_page

        written = new_page(Path(args.root), args.page)
        for path in written:
            print(f"wrote {path}")
        example = written[1]  # page, example, test, mkdocs.yml
        print(f"next: write the note, then run llmkb examples run {example.stem} --profile quick")
    elif args.command == "doctor":
        from llmkb.doctor import report

        print(report())
    elif args.command == "bench" and args.what == "data":
        _bench_data(args)
    elif args.command == "bench" and args.what == "inference":
        from llmkb.inference.bench import run_benchmark, to_markdown

        pretrain = _run_dir(args).require("pretrain")
        results = run_benchmark(
            pretrain / "model",
            pretrain / "shards",
            new_tokens=args.new_tokens,
            draft_steps=args.draft_steps,
            repeat=args.repeat,
            threads=args.threads,
        )
        print_results(results, args.out, to_markdown)
    elif args.command == "bench" and args.what == "pretrain":
        from llmkb.pretrain.bench import run_benchmark, to_markdown
        from llmkb.stages import get_stage

        shards = _run_dir(args).require("pretrain") / "shards"  # the run's shards, read only
        config = get_stage("pretrain").config(args.profile)
        results = run_benchmark(shards, config, args.steps, args.warmup, threads=args.threads, repeat=args.repeat)
        print_results(results, args.out, to_markdown)
    elif args.command == "bench":
        from llmkb.corpus import build_corpus
        from llmkb.tokenizer.bench import run_benchmark, to_markdown

        texts = [d["text"] for d in build_corpus(int(args.megabytes * 1e6))]
        results = run_benchmark(texts, args.vocab_size, args.repeat)
        print_results(results, args.out, to_markdown)
    return 0


def _bench_data(args) -> None:
    """The data stage's wall time on a fresh mini-web, extraction pages/s and MinHash docs/s per core."""
    import tempfile
    import time

    from llmkb.data.crawl import iter_warc_responses
    from llmkb.data.dedup import benchmark_minhash
    from llmkb.data.extract import benchmark_extraction
    from llmkb.stages import run_stage

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "bench")
        t0 = time.perf_counter()
        metrics = run_stage("data", run, "default", pages=args.pages)
        wall_s = time.perf_counter() - t0
        warcs = sorted((run.root / "data" / "crawl").glob("*.warc.gz"))
        pages = [r["body"] for w in warcs for r in iter_warc_responses(w) if r["status"] == 200][:500]
        results = {
            "pages": args.pages,
            "stage_wall_s": round(wall_s, 1),
            "crawl_s": metrics["crawl_s"],
            "filter_s": metrics["filter_s"],
            "extraction": benchmark_extraction(pages),
            "minhash": benchmark_minhash(2000),
        }
    print_results(results, args.out)


def _measure_model(args) -> dict | list:
    """``llmkb quantize`` / ``llmkb eval`` on a model folder and the run's held-out documents."""
    from llmkb.corpus import load_split
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    run = _run_dir(args)
    model_dir = Path(args.model) if args.model else run.require("pretrain") / "model"
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    heldout = [d["text"] for d in load_split(run.require("data"), "heldout")]
    if args.command == "quantize":
        from llmkb.quantize import compare_methods, to_markdown

        rows = compare_methods(model, tokenizer, heldout, context=model.config.context)
        print(to_markdown(rows))
        return rows
    from llmkb.evaluate.perplexity import perplexity_of_texts
    from llmkb.evaluate.tasks import arithmetic_problems, task_accuracy
    from llmkb.inference.generate import GenerationConfig, generate

    def answer(prompts: list[str]) -> list[str]:
        return generate(model, tokenizer, prompts, GenerationConfig(max_new_tokens=8))

    results = {
        "model": str(model_dir),
        "heldout": perplexity_of_texts(model, tokenizer, heldout, context=model.config.context),
        "arithmetic_2_digit": task_accuracy(answer, arithmetic_problems(50, digits=2, seed=0), show=0),
    }
    print(json.dumps(results, indent=2))
    return results


def _generate(args) -> None:
    """``llmkb generate`` / ``llmkb chat`` on a model folder (default: the run's base model; for chat its SFT
    model once trained)."""
    from llmkb.inference.chat import chat_loop
    from llmkb.inference.generate import GenerationConfig, generate, stream
    from llmkb.model.hf import load_pretrained as load_model
    from llmkb.tokenizer.hf import load_pretrained as load_tokenizer

    run = _run_dir(args)
    if args.model:
        model_dir = Path(args.model)
    elif args.command == "chat" and (run.root / "sft" / "metrics.json").exists():
        model_dir = run.require("sft") / "model"  # the model that learned the conversation format
    else:
        model_dir = run.require("pretrain") / "model"
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        num_beams=args.num_beams,
        stop_strings=args.stop,
        seed=args.seed,
        use_cache=not args.no_cache,
    )
    if args.command == "chat":
        chat_loop(model, tokenizer, config, system=args.system)
    elif args.stream:
        if len(args.prompt) != 1:
            raise ValueError(f"--stream prints one prompt's text; got {len(args.prompt)} prompts")
        for piece in stream(model, tokenizer, args.prompt[0], config):
            print(piece, end="", flush=True)
        print()
    else:
        for prompt, text in zip(args.prompt, generate(model, tokenizer, args.prompt, config)):
            print(prompt + text)


def _examples(args) -> int:
    from llmkb.examples import example_env, get_example, list_examples, run_script

    if args.action in (None, "list"):
        for example in list_examples():
            print(f"{example.name:24} {example.title}")
        print("\nrun one with: llmkb examples run NAME [--profile quick]")
        return 0
    example = get_example(args.name)
    run = _run_dir(args)
    env = example_env(args.profile, run.root.name, run.root.parent, example.path.parents[1] / "docs" / "generated")
    return run_script(example, env).returncode
