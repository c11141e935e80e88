"""The documentation: every public class and function of the API reference has a docstring,
and the README's links reach files of the repository (`make docs` builds the site itself,
with warnings as errors)."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def api_modules() -> list[str]:
    """The modules the API reference pages render (``::: module`` lines)."""
    pages = sorted((ROOT / "docs" / "api").glob("*.md"))
    return [m for page in pages for m in re.findall(r"^::: (\S+)$", page.read_text(), re.M)]


def undocumented(module_name: str) -> list[str]:
    """Names in ``module_name.__all__`` (classes, functions, their public methods and
    properties) without a docstring of their own or inherited."""
    module = importlib.import_module(module_name)
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            if isinstance(function, property):
                function = function.fget
            if inspect.isfunction(function) and not inspect.getdoc(getattr(obj, attr)):
                missing.append(f"{name}.{attr}")
    return missing


def test_the_api_reference_covers_the_packages_with_docstrings() -> None:
    modules = api_modules()
    for package in ("data", "models", "training", "inference", "evaluation"):
        assert f"dualstream_geo.{package}" in modules
    missing = {m: undocumented(m) for m in modules}
    assert not {m: names for m, names in missing.items() if names}


def test_the_readme_links_files_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", text) if "://" not in link]
    assert any(link.startswith("docs/") for link in links)
    assert [link for link in links if not (ROOT / link).exists()] == []
    # Every page of the site's navigation exists.
    nav = re.findall(r":\s*(\S+\.(?:md|ipynb))\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert len(nav) > 10
    assert [page for page in nav if not (ROOT / "docs" / page).exists()] == []


def test_notebooks_are_committed_with_their_figures_and_stay_light() -> None:
    """Opened on a code host, each notebook shows its maps and curves; the outputs stay
    small enough to keep the repository light."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    for path in notebooks:
        assert path.stat().st_size < 1_000_000, f"{path.name}: {path.stat().st_size} bytes"
        cells = json.loads(path.read_text())["cells"]
        code = [cell for cell in cells if cell["cell_type"] == "code"]
        assert all(cell.get("execution_count") for cell in code), f"{path.name}: not executed"
        figures = [
            output
            for cell in code
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        assert figures, f"{path.name}: no figure"
        errors = [
            o for cell in code for o in cell.get("outputs", []) if o["output_type"] == "error"
        ]
        assert not errors, f"{path.name}: committed with an error"
