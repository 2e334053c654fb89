"""Putting a benchmark's table into docs/PERFORMANCE.md, between its section's markers."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"


def performance_section_write(section: str, text: str) -> None:
    """Replace what lies between ``<!-- {section}:start -->`` and ``<!-- {section}:end -->`` (or
    append the section), leaving the rest of the document as it is."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    doc = DOC.read_text() if DOC.exists() else "# Performance\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in doc:
        doc = re.sub(rf"{re.escape(start)}.*?{re.escape(end)}", lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc)
