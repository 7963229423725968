"""Every Python snippet in the README and docs/ runs, and the quickstart notebook executes offline."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = [(doc, k, code) for doc in DOCS
            for k, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S))]


def test_the_docs_have_snippets():
    assert {doc.name for doc, _, _ in SNIPPETS} >= {"README.md", "python-api.md"}


@pytest.mark.parametrize("doc,k,code", SNIPPETS, ids=[f"{d.name}-{k}" for d, k, _ in SNIPPETS])
def test_snippet_runs(doc, k, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # snippets write files (anagram.png ...) into a scratch folder
    exec(compile(code, f"{doc.name}[{k}]", "exec"), {"__name__": "__snippet__"})


def test_readme_links_point_to_files():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)", text):
        assert (ROOT / target).exists(), target


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 4   # generate, SDEdit, anagram, hybrid
