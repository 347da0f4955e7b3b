/* Render the math that pymdownx.arithmatex (generic: true) leaves in the page, with the
 * KaTeX vendored under assets/vendor/katex (no CDN, no auto-render extension needed).
 *
 * arithmatex wraps inline math as <span class="arithmatex">\( ... \)</span> and display math
 * as <div class="arithmatex">\[ ... \]</div> (or a bare \begin{env} ... \end{env}).
 * Notebook pages (mkdocs-jupyter) carry their math as plain $...$ text in rendered markdown
 * cells, which arithmatex never sees; KaTeX's auto-render extension handles those cells.
 *
 * A formula KaTeX cannot parse is left as its source and reported with console.error, so the
 * browser test (which fails on console errors) catches broken math on any page.
 */
(function () {
  "use strict";

  var DELIMITERS = [
    ["\\(", "\\)", false],
    ["\\[", "\\]", true],
    ["$$", "$$", true],
  ];

  function parse(text, isBlock) {
    var src = text.trim();
    for (var i = 0; i < DELIMITERS.length; i++) {
      var open = DELIMITERS[i][0], close = DELIMITERS[i][1];
      if (src.length >= open.length + close.length &&
          src.slice(0, open.length) === open && src.slice(-close.length) === close) {
        return { tex: src.slice(open.length, src.length - close.length), display: DELIMITERS[i][2] };
      }
    }
    return { tex: src, display: isBlock };  // e.g. a bare \begin{align}...\end{align} block
  }

  function renderMath(root) {
    if (typeof katex === "undefined") {
      console.error("katex-init: katex.min.js is not loaded; math is left unrendered");
      return;
    }
    var nodes = (root || document).querySelectorAll(".arithmatex");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      if (el.getAttribute("data-katex") === "done") continue;  // already rendered
      var math = parse(el.textContent, el.tagName !== "SPAN");
      try {
        katex.render(math.tex, el, { displayMode: math.display, throwOnError: true });
        el.setAttribute("data-katex", "done");
      } catch (err) {
        console.error("katex-init: cannot render " + JSON.stringify(math.tex) + ": " + err.message);
      }
    }
  }

  var NOTEBOOK_MARKDOWN = ".jupyter-wrapper .jp-RenderedMarkdown";

  function renderNotebookMath(root) {
    var cells = (root || document).querySelectorAll(NOTEBOOK_MARKDOWN);
    if (!cells.length) return;
    if (typeof renderMathInElement === "undefined") {
      console.error("katex-init: auto-render.min.js is not loaded; notebook math is left unrendered");
      return;
    }
    for (var i = 0; i < cells.length; i++) {
      if (cells[i].getAttribute("data-katex") === "done") continue;
      renderMathInElement(cells[i], {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "\\[", right: "\\]", display: true },
          { left: "$", right: "$", display: false },
          { left: "\\(", right: "\\)", display: false },
        ],
        ignoredTags: ["script", "noscript", "style", "textarea", "pre", "code", "option"],
        throwOnError: false,
        errorCallback: function (msg, err) {
          console.error("katex-init: cannot render notebook math: " + msg + " " + err);
        },
      });
      cells[i].setAttribute("data-katex", "done");
    }
  }

  function renderAll() {
    renderMath(document);
    renderNotebookMath(document);
  }

  // material's document$ emits once per page, including after instant navigation;
  // without material (or before its bundle ran), fall back to the plain load event.
  if (typeof document$ !== "undefined" && typeof document$.subscribe === "function") {
    document$.subscribe(renderAll);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderAll);
  } else {
    renderAll();
  }
})();
