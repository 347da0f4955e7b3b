"""The sampling explorer on the inference page: real logits, the page's numbers equal Python's.

In: the next-token logits that ``examples/inference.py`` (section ``explorer-export``) saved as
``docs/generated/inference/next-token.json``, and the built quick site that shows them
(``site`` from ``tests/test_browser.py``, ``site_project`` from ``tests/conftest.py``).
Out: nothing; it checks that

- the exported logits are the model's own (recomputed for one prompt, within the rounding);
- for several (prompt, temperature, top-k, top-p) settings chosen through the page's labelled
  controls, with the keyboard, every probability the page shows, the kept set, the number of
  tokens kept and their probability mass equal what ``llmkb.inference.sampling``'s functions
  compute from the same exported logits (to 1e-3);
- the explorer's text stays readable in the light and the dark scheme.

Run only these tests with::

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_browser_sampling.py -p no:cacheprovider

The browser tests skip (or fail under CI) as those of ``tests/test_browser.py`` do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from test_browser import Site, site  # noqa: F401 - `site` is the fixture these tests use; tests/ is on sys.path

from llmkb.inference.sampling import apply_temperature, top_k_filter, top_p_filter
from llmkb.model.hf import load_pretrained as load_model
from llmkb.stages import RunDir
from llmkb.tokenizer.hf import load_pretrained as load_tokenizer
from llmkb.tokenizer.ids import encode

EXPORTED = Path("generated") / "inference" / "next-token.json"  # under docs/ in the project, under the site root
ROWS_SHOWN = 20  # the explorer draws bars for this many tokens (ROWS_SHOWN in sampling-explorer.js)
TOLERANCE = 1e-3
ROUNDING = 5e-4 + 1e-6  # the export rounds each logit to 3 decimals (plus float32 -> decimal noise)

# (prompt index, temperature, top-k, top-p): each rule alone, the three together, both ends of each slider
SETTINGS = [
    (0, 1.0, 0, 1.0),  # the model's own distribution
    (0, 0.5, 0, 1.0),
    (3, 1.5, 0, 1.0),
    (3, 0.1, 0, 1.0),
    (1, 3.0, 0, 1.0),
    (3, 1.0, 1, 1.0),  # greedy
    (2, 1.0, 5, 1.0),
    (3, 1.0, 0, 0.9),
    (0, 1.0, 0, 0.9),
    (1, 1.0, 0, 0.5),
    (2, 1.5, 0, 0.9),
    (2, 0.7, 40, 0.95),
    (3, 1.5, 100, 0.3),
    (1, 2.0, 3, 0.01),
]


def reference(logits: list[float], temperature: float, top_k: int, top_p: float):
    """What llmkb's sampling makes of ``logits``: probabilities before and after the filters, the kept mask.

    float64, as JavaScript computes; the rules and their order are ``next_token``'s.
    """
    scores = torch.tensor([logits], dtype=torch.float64)
    tempered = apply_temperature(scores, temperature) if temperature != 1.0 else scores
    filtered = top_p_filter(top_k_filter(tempered, top_k), top_p)
    return tempered[0], tempered.softmax(-1)[0], filtered.softmax(-1)[0], filtered[0].isfinite()


def read_exported(root: Path) -> dict:
    path = root / EXPORTED
    assert path.is_file(), f"{path} is missing: did the inference example's explorer-export section run?"
    return json.loads(path.read_text(encoding="utf-8"))


def percent(text: str) -> float:
    """``"12.34%"`` -> 0.1234.

    >>> percent("12.50%")
    0.125
    """
    match = re.fullmatch(r"\s*([0-9.]+)%\s*", text)
    assert match, f"not a percentage: {text!r}"
    return float(match.group(1)) / 100


def set_slider(page, label: str, target: float) -> str:
    """Move the range input labelled ``label`` to ``target`` with the keyboard; return its value."""
    slider = page.get_by_label(label, exact=True)
    low, high, step = (float(slider.get_attribute(name)) for name in ("min", "max", "step"))
    slider.focus()
    # From whichever end is closer: Home/End jump there, each arrow moves one step.
    if target - low <= high - target:
        slider.press("Home")
        key, steps = "ArrowRight", round((target - low) / step)
    else:
        slider.press("End")
        key, steps = "ArrowLeft", round((high - target) / step)
    for _ in range(steps):
        slider.press(key)
    value = slider.input_value()
    assert float(value) == pytest.approx(target), f"{label}: slider at {value}, wanted {target}"
    return value


def read_explorer(page) -> dict:
    """What the explorer shows: each bar's token id, text, probability and state, and the summary."""
    return page.evaluate(
        """() => {
          const box = document.querySelector(".sampling-explorer");
          return {
            rows: [...box.querySelectorAll(".sx-row")].map(row => ({
              id: Number(row.dataset.tokenId),
              token: row.querySelector(".sx-token").textContent,
              probability: row.querySelector(".sx-prob").textContent,
              kept: row.classList.contains("is-kept"),
            })),
            keptCount: box.querySelector(".sx-kept-count").textContent,
            keptMass: box.querySelector(".sx-kept-mass").textContent,
          };
        }"""
    )


def open_explorer(site: Site, color_scheme: str = "light"):
    page = site.new_page()
    # Material remembers the palette a reader picked (in localStorage); with none it follows the system.
    page.add_init_script("window.localStorage.clear()")
    page.emulate_media(color_scheme=color_scheme)
    page.goto(site.url + "inference/", wait_until="load")
    page.locator(".sampling-explorer[data-ready]").wait_for(state="visible")
    return page


# ----------------------------------------------------------------------------------------------
# the export


def test_exported_logits_are_the_models(site_project):
    exported = read_exported(site_project / "docs")
    assert 3 <= len(exported["prompts"]) <= 4
    model_dir = RunDir.named("quick", site_project / "runs").require("pretrain") / "model"
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    assert exported["tokens"] == [tokenizer.decode([token_id]) for token_id in range(model.config.vocab_size)]
    entry = exported["prompts"][-1]
    with torch.no_grad():
        logits = model(encode(tokenizer, entry["prompt"]))[0][0, -1].double()
    difference = (torch.tensor(entry["logits"], dtype=torch.float64) - logits).abs().max()
    assert difference <= ROUNDING, f"{entry['prompt']!r}: exported logits differ from the model's by {difference}"


# ----------------------------------------------------------------------------------------------
# the page


@pytest.mark.browser
def test_explorer_shows_what_llmkb_sampling_computes(site: Site):
    exported = read_exported(site.root)
    where = site.recorder.current = "(inference: sampling explorer)"
    page = open_explorer(site)
    prompt_menu = page.get_by_label("Prompt", exact=True)
    assert prompt_menu.locator("option").all_text_contents() == [e["prompt"] for e in exported["prompts"]]
    for prompt_index, temperature, top_k, top_p in SETTINGS:
        prompt_menu.select_option(str(prompt_index))
        # The values the page reads back from its sliders are the ones Python gets.
        temperature = float(set_slider(page, "Temperature", temperature))
        top_k = int(set_slider(page, "Top-k", top_k))
        top_p = float(set_slider(page, "Top-p", top_p))
        setting = f"prompt {prompt_index}, temperature {temperature}, top-k {top_k}, top-p {top_p}"
        shown = read_explorer(page)

        logits = exported["prompts"][prompt_index]["logits"]
        tempered, before, after, kept = reference(logits, temperature, top_k, top_p)
        most_likely = sorted(range(len(logits)), key=lambda token_id: (-logits[token_id], token_id))[:ROWS_SHOWN]
        assert [row["id"] for row in shown["rows"]] == most_likely, setting
        # torch sorts equal logits in no fixed order, so when top-p cuts through a group of tied
        # tokens, which of them stay is arbitrary; only how many stay is fixed.
        cut_ties = set(tempered[kept].tolist()) & set(tempered[~kept].tolist())
        for row in shown["rows"]:
            token_id, token = row["id"], exported["tokens"][row["id"]]
            if token.isprintable():
                assert row["token"].replace("\u2423", " ") == token, (
                    f"{setting}: token {token_id} shown as {row['token']!r}"
                )
            expected = float(after[token_id])
            if float(tempered[token_id]) in cut_ties:
                expected = float(after[tempered == tempered[token_id]].max()) if row["kept"] else 0.0
            else:
                assert row["kept"] == bool(kept[token_id]), f"{setting}: token {token_id} {token!r}"
            assert percent(row["probability"]) == pytest.approx(expected, abs=TOLERANCE), (
                f"{setting}: token {token_id} {token!r}"
            )
        assert int(shown["keptCount"].replace(",", "")) == int(kept.sum()), setting
        assert percent(shown["keptMass"]) == pytest.approx(float(before[kept].sum()), abs=TOLERANCE), setting
    page.close()
    assert not site.recorder.problems_at(where), site.recorder.problems_at(where)


def _rgba(css: str) -> tuple[float, float, float, float]:
    """A computed CSS colour as (r, g, b, alpha).

    >>> _rgba("rgb(255, 0, 0)"), _rgba("rgba(0, 0, 0, 0.5)")
    ((255.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 0.5))
    """
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)]
    assert css.startswith("rgb") and len(numbers) in (3, 4), f"unexpected colour {css!r}"
    return tuple(numbers[:3]) + ((numbers[3] if len(numbers) == 4 else 1.0),)


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of a (possibly translucent) text colour over an opaque background.

    >>> round(contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)"), 1), contrast("rgba(0, 0, 0, 0)", "rgb(9, 9, 9)")
    (21.0, 1.0)
    """
    *fg, alpha = _rgba(foreground)
    bg = _rgba(background)[:3]
    blended = [alpha * f + (1 - alpha) * b for f, b in zip(fg, bg)]

    def luminance(rgb):
        linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(blended), luminance(bg)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.browser
@pytest.mark.parametrize("color_scheme, material_scheme", [("light", "default"), ("dark", "slate")])
def test_explorer_text_is_readable_in_both_schemes(site: Site, color_scheme: str, material_scheme: str):
    where = site.recorder.current = f"(inference: sampling explorer, {color_scheme})"
    page = open_explorer(site, color_scheme)
    assert page.evaluate("document.body.getAttribute('data-md-color-scheme')") == material_scheme
    set_slider(page, "Top-k", 3)  # some bars kept, some filtered: both text styles are on the page
    colours = page.evaluate(
        """() => {
          const opaque = el => {  // the first background behind el that is not transparent
            for (; el; el = el.parentElement) {
              const bg = getComputedStyle(el).backgroundColor;
              if (!/rgba\\(.*, 0\\)$/.test(bg) && bg !== "transparent") return bg;
            }
            return "rgb(255, 255, 255)";
          };
          const selectors = ["label", "output", ".sx-summary", ".sx-legend", ".is-kept .sx-token",
                             ".is-kept .sx-prob", ".is-dropped .sx-token", ".is-dropped .sx-prob", ".sx-status"];
          return selectors.map(sel => {
            const el = document.querySelector(".sampling-explorer " + sel);
            return [sel, el && getComputedStyle(el).color, el && opaque(el)];
          });
        }"""
    )
    for selector, foreground, background in colours:
        assert foreground, f"nothing matches {selector!r} in the explorer"
        ratio = contrast(foreground, background)
        assert ratio >= 4.5, f"{color_scheme}: {selector} text {foreground} on {background}: contrast {ratio:.2f} < 4.5"
    page.close()
    assert not site.recorder.problems_at(where), site.recorder.problems_at(where)
