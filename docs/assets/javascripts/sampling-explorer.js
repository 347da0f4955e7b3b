/* The sampling explorer on the inference page: temperature, top-k and top-p applied, live, to
 * our model's real next-token logits.
 *
 * In: a container <div class="sampling-explorer" data-src="URL of next-token.json">, where the
 * JSON is what examples/inference.py (section explorer-export) saved during the docs build:
 * {"tokens": [text of every token id], "prompts": [{"prompt": text, "logits": [one per id]}]}.
 * Out: controls (prompt, temperature, top-k, top-p) and, for the most likely tokens, their
 * probability after the filters, with the kept set highlighted.
 *
 * The rules are those of llmkb/inference/sampling.py (and of Hugging Face's logits warpers),
 * step for step, so that the page shows what our sampling really draws from:
 *   1. temperature: logits / T (skipped at T = 1, where it changes nothing);
 *   2. top-k: keep every logit >= the k-th largest (ties with the k-th stay); k = 0 keeps all;
 *   3. top-p: sort from the least likely up, drop each token whose cumulative probability (its own
 *      plus that of every less likely token) is <= 1 - p; the most likely token always stays, so
 *      the token that crosses the threshold p is kept; p = 1 keeps all;
 *   4. softmax over what is left.
 * torch sorts tokens with equal logits in no fixed order; here the lower id counts as the more
 * likely one. That can only change *which* of two equally likely tokens is kept at the top-p
 * boundary, never how many tokens are kept or the probability mass they hold.
 */
(function () {
  "use strict";

  var ROWS_SHOWN = 20; // bars for the 20 most likely tokens; the summary counts every token
  var CONTROLS = [
    // id suffix, label, min, max, step, initial value, how the value reads
    { key: "temperature", label: "Temperature", min: "0.1", max: "3", step: "0.1", value: "1",
      describe: function (v) { return v.toFixed(1); } },
    { key: "top-k", label: "Top-k", min: "0", max: "100", step: "1", value: "0",
      describe: function (v) { return v === 0 ? "0 (off)" : String(v); } },
    { key: "top-p", label: "Top-p", min: "0.01", max: "1", step: "0.01", value: "1",
      describe: function (v) { return v === 1 ? "1.00 (off)" : v.toFixed(2); } },
  ];

  // ------------------------------------------------------------------------------------------
  // the rules (pure functions on arrays of numbers; -Infinity marks a filtered token)

  /* Token ids from the most to the least likely (ties: lower id first). Dividing by a positive
   * temperature keeps this order, so one ranking per prompt serves every setting. */
  function rankByLogit(logits) {
    var order = logits.map(function (_, id) { return id; });
    order.sort(function (a, b) { return logits[b] - logits[a] || a - b; });
    return order;
  }

  function applyTemperature(logits, temperature) {
    if (temperature === 1) return logits.slice();
    return logits.map(function (x) { return x / temperature; });
  }

  function topKFilter(scores, k, order) {
    if (k === 0) return scores;
    var kth = scores[order[Math.min(k, scores.length) - 1]];
    return scores.map(function (x) { return x < kth ? -Infinity : x; });
  }

  function softmax(scores) {
    var max = Math.max.apply(null, scores);
    var exps = scores.map(function (x) { return Math.exp(x - max); });
    var total = exps.reduce(function (a, b) { return a + b; }, 0);
    return exps.map(function (e) { return e / total; });
  }

  function topPFilter(scores, p, order) {
    if (p === 1) return scores;
    var probs = softmax(scores);
    var kept = scores.slice();
    var cumulative = 0;
    // From the least likely token up; order[0], the most likely, always stays.
    for (var rank = order.length - 1; rank >= 1; rank--) {
      cumulative += probs[order[rank]];
      if (cumulative > 1 - p) break; // every more likely token has a larger cumulative: all stay
      kept[order[rank]] = -Infinity;
    }
    return kept;
  }

  /* Everything the page shows for one setting. */
  function explore(logits, order, temperature, k, p) {
    var tempered = applyTemperature(logits, temperature);
    var filtered = topPFilter(topKFilter(tempered, k, order), p, order);
    var before = softmax(tempered);
    // Kept means "not filtered", even where a probability rounds down to 0 (a very low temperature).
    var kept = filtered.map(function (x) { return x !== -Infinity; });
    var keptCount = 0, keptMass = 0;
    for (var id = 0; id < filtered.length; id++) {
      if (kept[id]) {
        keptCount++;
        keptMass += before[id];
      }
    }
    return { before: before, after: softmax(filtered), kept: kept, keptCount: keptCount, keptMass: keptMass };
  }

  // ------------------------------------------------------------------------------------------
  // the page

  function element(tag, attributes, text) {
    var el = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { el.setAttribute(name, attributes[name]); });
    if (text !== undefined) el.textContent = text;
    return el;
  }

  /* A token as readers can see it: spaces, newlines and tabs made visible, other control
   * characters as escapes. */
  function visibleToken(text) {
    return text.replace(/[\u0000-\u001f\u007f ]/g, function (c) {
      if (c === " ") return "\u2423"; // ␣
      if (c === "\n") return "\u23ce"; // ⏎
      if (c === "\t") return "\u21e5"; // ⇥
      return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
    });
  }

  function percent(fraction) {
    return (100 * fraction).toFixed(2) + "%";
  }

  function build(container, data, index) {
    var prefix = "sampling-explorer-" + index + "-";
    container.textContent = "";
    var form = element("form", { class: "sx-controls", "aria-label": "Sampling settings" });
    form.addEventListener("submit", function (event) { event.preventDefault(); });

    var promptField = element("div", { class: "sx-control sx-control--prompt" });
    promptField.appendChild(element("label", { for: prefix + "prompt" }, "Prompt"));
    var promptSelect = element("select", { id: prefix + "prompt" });
    data.prompts.forEach(function (entry, i) {
      promptSelect.appendChild(element("option", { value: String(i) }, entry.prompt));
    });
    promptField.appendChild(promptSelect);
    form.appendChild(promptField);

    var inputs = {}, outputs = {};
    CONTROLS.forEach(function (control) {
      var id = prefix + control.key;
      var field = element("div", { class: "sx-control" });
      field.appendChild(element("label", { for: id }, control.label));
      inputs[control.key] = element("input", {
        type: "range", id: id, min: control.min, max: control.max, step: control.step, value: control.value,
      });
      outputs[control.key] = element("output", { for: id, id: id + "-value" });
      field.appendChild(inputs[control.key]);
      field.appendChild(outputs[control.key]);
      form.appendChild(field);
    });
    container.appendChild(form);

    var summary = element("p", { class: "sx-summary", "aria-live": "polite" });
    var keptCount = element("strong", { class: "sx-kept-count" });
    var keptMass = element("strong", { class: "sx-kept-mass" });
    summary.append("Tokens that can be drawn: ", keptCount, " of " + data.tokens.length.toLocaleString("en") +
      ", holding ", keptMass, " of the probability at this temperature (before top-k and top-p).");
    container.appendChild(summary);

    var bars = element("ol", { class: "sx-bars", "aria-label": "The most likely next tokens" });
    container.appendChild(bars);
    container.appendChild(element("p", { class: "sx-legend" },
      "Filled bar: probability after the filters (what is drawn from). Dashed outline: probability at " +
      "this temperature before top-k and top-p. Crossed out: filtered, probability 0."));

    var orders = data.prompts.map(function (entry) { return rankByLogit(entry.logits); });

    function update() {
      var entry = data.prompts[Number(promptSelect.value)];
      var order = orders[Number(promptSelect.value)];
      var temperature = Number(inputs["temperature"].value);
      var k = Number(inputs["top-k"].value);
      var p = Number(inputs["top-p"].value);
      CONTROLS.forEach(function (control) {
        outputs[control.key].textContent = control.describe(Number(inputs[control.key].value));
      });
      var result = explore(entry.logits, order, temperature, k, p);
      keptCount.textContent = result.keptCount.toLocaleString("en");
      keptMass.textContent = percent(result.keptMass);
      bars.textContent = "";
      order.slice(0, ROWS_SHOWN).forEach(function (id) {
        var kept = result.kept[id];
        var row = element("li", { class: "sx-row " + (kept ? "is-kept" : "is-dropped"), "data-token-id": String(id) });
        row.appendChild(element("code", { class: "sx-token", title: "token id " + id }, visibleToken(data.tokens[id])));
        var track = element("span", { class: "sx-track", "aria-hidden": "true" });
        var beforeBar = element("span", { class: "sx-before" });
        beforeBar.style.width = percent(result.before[id]);
        var afterBar = element("span", { class: "sx-after" });
        afterBar.style.width = percent(result.after[id]);
        track.append(beforeBar, afterBar);
        row.appendChild(track);
        row.appendChild(element("span", { class: "sx-prob" }, percent(result.after[id])));
        if (!kept) row.appendChild(element("span", { class: "sx-status" }, "filtered"));
        bars.appendChild(row);
      });
    }

    promptSelect.addEventListener("change", update);
    CONTROLS.forEach(function (control) { inputs[control.key].addEventListener("input", update); });
    update();
    container.setAttribute("data-ready", "true"); // the browser test waits for this
  }

  function init() {
    var containers = document.querySelectorAll(".sampling-explorer:not([data-ready])");
    Array.prototype.forEach.call(containers, function (container, index) {
      var src = container.getAttribute("data-src");
      fetch(src)
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) { build(container, data, index); })
        .catch(function (err) {
          container.textContent = "The sampling explorer could not load its data (" + src + "): " + err.message;
          console.error("sampling-explorer: cannot load " + src + ": " + err.message);
        });
    });
  }

  // material's document$ emits once per page, including after instant navigation;
  // without material (or before its bundle ran), fall back to the plain load event.
  if (typeof document$ !== "undefined" && typeof document$.subscribe === "function") {
    document$.subscribe(init);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
