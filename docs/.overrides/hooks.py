"""MkDocs hook: keep every built page free of CDN references.

nbconvert's notebook template (used by mkdocs-jupyter) carries a script that imports mermaid
from cdnjs when a notebook holds a mermaid cell. Our notebooks use the site's own vendored
mermaid instead, so that script is removed from the page before it is written.
"""

import re

CDN_SCRIPT = re.compile(r"<script\b[^>]*>(?:(?!</script>).)*?https://cdnjs\.cloudflare\.com(?:(?!</script>).)*?</script>", re.S)


def on_post_page(output: str, page, config) -> str:
    return CDN_SCRIPT.sub("", output)
