"""Screenshots of the leaderboard and a design view at 80x24 and 200x60 (``python -m discover.ui.screenshots``
writes the same files into docs/screenshots)."""

import re
from html import unescape

from discover.ui.screenshots import save_screenshots


def svg_text(path) -> str:
    """The characters drawn in a Textual SVG screenshot, roughly in reading order."""
    return unescape(" ".join(re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text()))).replace("\xa0", " ")


def test_screenshots_show_the_leaderboard_and_a_design_at_both_sizes(tmp_path):
    paths = save_screenshots(tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{view}-{size}.svg" for view in ("leaderboard", "design") for size in ("80x24", "200x60"))
    small, large = svg_text(tmp_path / "leaderboard-80x24.svg"), svg_text(tmp_path / "leaderboard-200x60.svg")
    for text in (small, large):
        assert "score" in text and "sort" in text and "quick@v2" in text
    assert "parity long" in large  # the wide screen shows more columns
    design, wide = svg_text(tmp_path / "design-80x24.svg"), svg_text(tmp_path / "design-200x60.svg")
    for text in (design, wide):
        assert "overview" in text and "diff" in text and "lineage" in text and "parent #" in text
    assert "class Mixer" in wide and "class Mixer" not in design  # the wide screen shows the code beside
