// A region that scrolls sideways can be scrolled from the keyboard only once it can take focus.
// Wide tables (material wraps each in .md-typeset__scrollwrap) and long lines in notebook code
// cells overflow, so each region that does gets a tab stop (axe-core's scrollable-region-focusable;
// tests/test_browser_a11y.py). Regions that fit get none, so Tab does not stop on every table.
(() => {
  const SCROLLABLE = ".md-typeset__scrollwrap, .jupyter-wrapper .highlight-ipynb";

  function markScrollable() {
    for (const region of document.querySelectorAll(SCROLLABLE)) {
      if (region.scrollWidth > region.clientWidth) {
        region.tabIndex = 0;
      } else {
        region.removeAttribute("tabindex");
      }
    }
  }

  // material emits document$ once its components (the table wrappers among them) are mounted.
  document$.subscribe(() => requestAnimationFrame(markScrollable));
  window.addEventListener("resize", markScrollable);
})();
