/* Tokenizer playground: type text, see how our run's tokenizer cuts it, computed in the browser.
 *
 * In: an element <div class="llmkb-playground" data-tokenizer="URL"> holding a <textarea>, a
 * .llmkb-playground-status, a .llmkb-playground-tokens and a .llmkb-playground-ids element; the
 * URL names the JSON that llmkb.tokenizer.web.to_web_json wrote for the run the site was built from.
 * Out: on every edit, the text as colored token pieces (ids under each piece), the list of ids
 * and a token / character / byte count.
 *
 * Encoding follows BPETokenizer.encode(text) in llmkb/tokenizer/bpe.py step by step, so the ids
 * are the same (the browser test compares them on English, Vietnamese, Chinese, emoji...):
 *   1. special tokens are cut out first (longest first) and become their own ids;
 *   2. the rest is split into chunks by the pre-split regex (js_pattern, the checked JavaScript
 *      translation of the Python pattern; the "u" flag makes it work on code points);
 *   3. each chunk's UTF-8 bytes are merged pair by pair, always the pair with the lowest rank
 *      (the earliest learned merge) first, every occurrence of it from left to right.
 * Pieces follow llmkb.tokenizer.viz.group_utf8: a token that ends inside a character is shown
 * together with the tokens that complete it, with a dashed outline and all their ids.
 */
(function () {
  "use strict";

  var PAIR_KEY = 1 << 21; // larger than any token id, so left * PAIR_KEY + right names one pair
  var SYNTAX = /[\\^$.*+?()[\]{}|\/]/g; // characters a RegExp needs escaped
  var VISIBLE = { " ": "\u00b7", "\t": "\u2192", "\n": "\u21b5", "\r": "\u240d" }; // as viz.visible_whitespace
  var STYLE_ID = "llmkb-playground-style";
  var CSS = [
    ".llmkb-playground textarea{width:100%;box-sizing:border-box;font-family:var(--md-code-font-family,monospace);",
    "font-size:.8rem;padding:.5em;color:var(--md-default-fg-color);background:var(--md-default-bg-color);",
    "border:1px solid var(--md-default-fg-color--lighter);border-radius:4px;resize:vertical}",
    ".llmkb-playground label{display:block;font-weight:700;margin-bottom:.3em}",
    ".llmkb-playground-tokens{font-family:var(--md-code-font-family,monospace);line-height:2.1;",
    "overflow-wrap:anywhere;padding:.5em 0;min-height:2em;color:#111}",
    // The theme's text color is translucent; over the tinted token fills of the dark theme it
    // falls below a 4.5 contrast ratio (measured by the browser test), so tokens get opaque text.
    "[data-md-color-scheme=slate] .llmkb-playground-tokens{color:#f2f2f7}",
    ".llmkb-playground-tokens .t{display:inline-block;border-radius:3px;padding:0 1px;margin:1px 1px 1px 0;",
    "color:inherit;line-height:1.5;white-space:pre}",
    ".llmkb-playground-tokens .t sub{font-size:.62em;opacity:.75;margin-left:1px}",
    ".llmkb-playground-tokens .m{outline:1px dashed currentColor;outline-offset:-1px}",
    ".llmkb-playground-tokens .ws{opacity:.6}",
    ".llmkb-playground-ids{overflow-wrap:anywhere;white-space:normal}",
    ".llmkb-playground-status{font-size:.8em;opacity:.8}",
  ].join("");

  function hexToBytes(hex) {
    var bytes = new Uint8Array(hex.length / 2);
    for (var i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
    return bytes;
  }

  function Tokenizer(data) {
    if (data.format !== "llmkb-bpe-web/1") throw new Error("unknown tokenizer format " + JSON.stringify(data.format));
    this.pattern = new RegExp(data.js_pattern, "gu");
    this.ranks = new Map(); // pair key -> the id it merges into (256 + rank: lower is earlier)
    for (var k = 0; k < data.merges.length; k += 2) {
      this.ranks.set(data.merges[k] * PAIR_KEY + data.merges[k + 1], 256 + k / 2);
    }
    this.vocab = data.vocab.map(hexToBytes);
    this.specials = data.special_tokens;
    var names = Object.keys(this.specials).sort(function (a, b) { return b.length - a.length; });
    this.specialSplit = names.length
      ? new RegExp("(" + names.map(function (s) { return s.replace(SYNTAX, "\\$&"); }).join("|") + ")")
      : null;
    this.palette = data.palette;
    this.encoder = new TextEncoder();
    this.cache = new Map(); // chunk -> ids: typing re-encodes the same words over and over
  }

  Tokenizer.prototype.encodeChunk = function (bytes) {
    var ids = Array.from(bytes);
    while (ids.length >= 2) {
      var best = Infinity, at = -1;
      for (var i = 0; i + 1 < ids.length; i++) {
        var id = this.ranks.get(ids[i] * PAIR_KEY + ids[i + 1]);
        if (id !== undefined && id < best) { best = id; at = i; }
      }
      if (at < 0) break; // no pair left that is a merge
      var left = ids[at], right = ids[at + 1], merged = [];
      for (var j = 0; j < ids.length; ) {
        if (j + 1 < ids.length && ids[j] === left && ids[j + 1] === right) { merged.push(best); j += 2; }
        else { merged.push(ids[j]); j += 1; }
      }
      ids = merged;
    }
    return ids;
  };

  Tokenizer.prototype.encodeOrdinary = function (text, out) {
    var chunks = text.match(this.pattern) || [];
    for (var c = 0; c < chunks.length; c++) {
      var ids = this.cache.get(chunks[c]);
      if (ids === undefined) {
        ids = this.encodeChunk(this.encoder.encode(chunks[c]));
        this.cache.set(chunks[c], ids);
      }
      for (var i = 0; i < ids.length; i++) out.push(ids[i]);
    }
  };

  Tokenizer.prototype.encode = function (text) {
    var ids = [];
    var parts = this.specialSplit ? text.split(this.specialSplit) : [text];
    for (var k = 0; k < parts.length; k++) {
      if (k % 2) ids.push(this.specials[parts[k]]); // split() puts the captured specials at odd positions
      else if (parts[k]) this.encodeOrdinary(parts[k], ids);
    }
    return ids;
  };

  Tokenizer.prototype.tokenBytes = function (id) {
    if (id < this.vocab.length) return this.vocab[id];
    for (var name in this.specials) if (this.specials[name] === id) return this.encoder.encode(name);
    throw new Error("token id " + id + " is not in the vocabulary");
  };

  // True when bytes stop in the middle of a UTF-8 character (its lead byte wants more bytes).
  function endsMidCharacter(bytes) {
    for (var back = 1; back <= Math.min(4, bytes.length); back++) {
      var b = bytes[bytes.length - back];
      if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead
      var need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      return back < need;
    }
    return false;
  }

  // [{ids: [...], text: "..."}]: one piece per token, or per run of tokens sharing a character.
  function pieces(tokenizer, ids) {
    var out = [], group = [], buffer = [];
    var decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // keep a typed U+FEFF: it is text here
    for (var i = 0; i < ids.length; i++) {
      group.push(ids[i]);
      var bytes = tokenizer.tokenBytes(ids[i]);
      for (var j = 0; j < bytes.length; j++) buffer.push(bytes[j]);
      if (!endsMidCharacter(buffer) || i === ids.length - 1) {
        out.push({ ids: group, text: decoder.decode(new Uint8Array(buffer)) });
        group = [];
        buffer = [];
      }
    }
    return out;
  }

  function pieceElement(piece, color) {
    var span = document.createElement("span");
    span.className = "t" + (piece.ids.length > 1 ? " m" : "");
    span.style.background = color;
    span.title = (piece.ids.length > 1 ? "ids " : "id ") + piece.ids.join(" ") + ": " + JSON.stringify(piece.text);
    Array.from(piece.text).forEach(function (ch) {
      if (VISIBLE[ch]) {
        var mark = document.createElement("span");
        mark.className = "ws";
        mark.textContent = VISIBLE[ch];
        span.appendChild(mark);
      } else {
        span.appendChild(document.createTextNode(ch));
      }
    });
    var sub = document.createElement("sub");
    sub.textContent = piece.ids.join(" ");
    span.appendChild(sub);
    return span;
  }

  function render(box, tokenizer) {
    var text = box.querySelector("textarea").value;
    var ids = tokenizer.encode(text);
    var view = box.querySelector(".llmkb-playground-tokens");
    view.textContent = "";
    pieces(tokenizer, ids).forEach(function (piece, n) {
      view.appendChild(pieceElement(piece, tokenizer.palette[n % tokenizer.palette.length]));
      // line breaks go after the piece, so a colored span never covers two lines
      for (var k = 0; k < piece.text.split("\n").length - 1; k++) view.appendChild(document.createElement("br"));
    });
    box.querySelector(".llmkb-playground-ids").textContent = "[" + ids.join(", ") + "]";
    box.querySelector(".llmkb-playground-status").textContent =
      ids.length + " tokens \u00b7 " + Array.from(text).length + " characters \u00b7 " +
      tokenizer.encoder.encode(text).length + " bytes";
  }

  function addStyle() {
    if (document.getElementById(STYLE_ID)) return;
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  function start(box) {
    if (box.dataset.state) return; // already started on this page
    box.dataset.state = "loading";
    var url = new URL(box.dataset.tokenizer, window.location.href);
    fetch(url)
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status + " for " + url);
        return response.json();
      })
      .then(function (data) {
        var tokenizer = new Tokenizer(data);
        box.querySelector("textarea").addEventListener("input", function () { render(box, tokenizer); });
        render(box, tokenizer);
        box.dataset.state = "ready";
      })
      .catch(function (err) {
        box.dataset.state = "failed";
        box.querySelector(".llmkb-playground-status").textContent = "The tokenizer could not be loaded: " + err.message;
        console.error("tokenizer-playground: " + err.message);
      });
  }

  function startAll() {
    var boxes = document.querySelectorAll(".llmkb-playground[data-tokenizer]");
    if (!boxes.length) return;
    addStyle();
    boxes.forEach(start);
  }

  // material's document$ emits once per page, including after instant navigation;
  // without material (or before its bundle ran), fall back to the plain load event.
  if (typeof document$ !== "undefined" && typeof document$.subscribe === "function") {
    document$.subscribe(startAll);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startAll);
  } else {
    startAll();
  }
})();
