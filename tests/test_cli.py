"""Stage subcommands come from the registry: one per stage, help from its summary, ``--set`` for any config field."""

from __future__ import annotations

import argparse
import json

import pytest

from llmkb.cli import build_parser, main, stage_overrides
from llmkb.corpus import build_corpus
from llmkb.io import read_json
from llmkb.stages import get_stage, parse_override, stages


def _subcommands() -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices, {c.dest: c.help for c in action._choices_actions}


def test_every_registered_stage_has_a_subcommand_whose_help_is_its_summary():
    parsers, helps = _subcommands()
    for stage in stages():
        assert stage.name in parsers
        assert helps[stage.name] == stage.summary
        assert parsers[stage.name].description == stage.summary


def test_set_parses_by_the_field_type():
    assert parse_override(get_stage("pretrain"), "n_layer=8") == ("n_layer", 8)
    assert parse_override(get_stage("pretrain"), "lr=3e-4") == ("lr", 3e-4)
    assert parse_override(get_stage("pretrain"), "progress=no") == ("progress", False)
    assert parse_override(get_stage("pretrain"), "mix=all") == ("mix", "all")
    assert parse_override(get_stage("dpo"), "max_steps=none") == ("max_steps", None)
    assert parse_override(get_stage("dpo"), "max_steps=7") == ("max_steps", 7)
    assert parse_override(get_stage("tokenizer"), "inputs=a.txt,b.txt") == ("inputs", ["a.txt", "b.txt"])
    assert parse_override(get_stage("data"), "seed_urls=http://x.test/=y") == (
        "seed_urls",
        ["http://x.test/=y"],
    )  # first '='


def test_flags_and_set_together_set_does_last():
    stage = get_stage("pretrain")
    args = build_parser().parse_args(
        [
            "pretrain",
            "--max-steps",
            "5",
            "--stop-after",
            "2",
            "--device",
            "cpu",
            "--compile",
            "no",
            "--mix",
            "all",
            "--set",
            "n_layer=8",
            "--set",
            "max_steps=9",
        ]
    )
    assert stage_overrides(stage, args) == {
        "max_steps": 9,
        "stop_after": 2,
        "device": "cpu",
        "compile": "no",
        "mix": "all",
        "n_layer": 8,
    }
    args = build_parser().parse_args(
        ["data", "--seed-url", "http://a.test/", "--seed-url", "http://b.test/", "--warc", "x.warc.gz"]
    )
    assert stage_overrides(get_stage("data"), args) == {
        "seed_urls": ["http://a.test/", "http://b.test/"],
        "warcs": ["x.warc.gz"],
    }
    args = build_parser().parse_args(
        ["sft", "--trainer", "trl", "--method", "lora", "--epochs", "2", "--max-steps", "3"]
    )
    assert stage_overrides(get_stage("sft"), args) == {"trainer": "trl", "method": "lora", "epochs": 2, "max_steps": 3}
    for stage in stages():  # --device on every stage that has a device
        if "device" in {f for f in stage.config_cls.__dataclass_fields__}:
            assert stage_overrides(stage, build_parser().parse_args([stage.name, "--device", "cpu"])) == {
                "device": "cpu"
            }


def test_unknown_field_is_an_error_listing_the_valid_ones(tmp_path, capsys):
    assert main(["pretrain", "--runs-root", str(tmp_path), "--set", "layers=8"]) == 2
    err = capsys.readouterr().err
    assert "stage 'pretrain' has no config field 'layers'" in err
    assert "n_layer" in err and "context" in err
    assert not (tmp_path / "default" / "pretrain").exists()  # nothing ran


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("n_layer=eight", "field n_layer is int; cannot read 'eight'"),
        ("progress=maybe", "field progress is bool; cannot read 'maybe'"),
        ("n_layer", "expected FIELD=VALUE"),
    ],
)
def test_bad_value_is_an_error_naming_field_type_and_value(tmp_path, capsys, setting, message):
    assert main(["pretrain", "--runs-root", str(tmp_path), "--set", setting]) == 2
    assert message in capsys.readouterr().err
    assert main(["pretrain", "--runs-root", str(tmp_path), "--n-layer", "eight"]) == 2
    assert "field n_layer is int; cannot read 'eight'" in capsys.readouterr().err


def test_set_reaches_the_saved_config(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(d["text"] for d in build_corpus(60_000)), encoding="utf-8")
    code = main(
        [
            "tokenizer",
            "--profile",
            "quick",
            "--input",
            str(text),
            "--set",
            "vocab_size=300",
            "--set",
            "max_train_bytes=50000",
            "--runs-root",
            str(tmp_path),
            "--run",
            "x",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["vocab_size"] == 300
    saved = read_json(tmp_path / "x" / "tokenizer" / "config.json")
    assert saved["profile"] == "quick" and saved["vocab_size"] == 300 and saved["max_train_bytes"] == 50_000
    assert saved["inputs"] == [str(text)]
