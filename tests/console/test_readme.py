"""The README's Web console section: its screenshots exist, and it names every console page."""

from __future__ import annotations

import re
from pathlib import Path

from tests.console.test_tenant_boundary import pages

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section() -> str:
    return README.split("## Web console\n", 1)[1].split("\n## ", 1)[0]


def test_the_screenshots_are_in_the_repository():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section())
    assert {
        "docs/screenshots/graph.png",
        "docs/screenshots/job.png",
        "docs/screenshots/webhook.png",
    } <= set(images)
    for image in images:
        assert (ROOT / image).stat().st_size > 10_000, image


def test_every_page_is_described(app):
    described = section()
    partials = {"/ui/jobs/rows", "/ui/jobs/{job_id}/live"}  # parts of pages, for htmx
    for path in set(pages(app)) - partials:
        shown = path.replace("{model_id}", "{id}").replace("{job_id}", "{id}")
        base = re.sub(r"/\{[^}]+\}.*", "", path)
        assert f"`{shown}`" in described or ("{" in path and f"`{base}`" in described), path
