"""The architecture holds: imports point down the layers of pyproject.toml's import-linter contract, with no cycles."""

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_imports_point_down_the_layers(monkeypatch, capsys):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, capsys.readouterr().out


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("fundiff", include_external_packages=False)
    cycles = sorted((m, i) for m in graph.modules for i in graph.find_modules_directly_imported_by(m)
                    if i != m and graph.chain_exists(importer=i, imported=m)
                    and not (m == "fundiff" or i == "fundiff"))   # the package root re-exports lazily
    assert cycles == []


def test_every_module_is_in_a_layer():
    """A new top-level module must be given a place in the contract (otherwise it escapes the check)."""
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    src = ROOT / "src" / "fundiff"
    found = {f"fundiff.{p.stem if p.is_file() else p.name}" for p in src.iterdir()
             if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()}
    assert found - named == set()
