"""The package's house (docs/development.md): each folder one job, in layers that import
only downwards, and no module that imports itself around a circle."""

from conftest import PKG, imports, module_name

# bottom to top: a module imports from its own layer or one below it, never above
LAYERS = ("config", "jobs", "data", "models", "optvis", "measures", "figures", "preflight", "stages")


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PKG.rglob("*.py")}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer_folder():
    loose = [m for m in graph() if layer(m) is None and m not in ("featevo", "featevo.__main__")]
    assert not loose, f"modules outside the layer folders {LAYERS}: {loose}"


def test_no_import_runs_up_a_layer():
    up = [(m, i) for m, deps in graph().items() for i in deps
          if layer(m) is not None and layer(i) is not None and layer(i) > layer(m)]
    assert not up, "imports that run up a layer: " + ", ".join(f"{m} -> {i}" for m, i in up)


def test_no_import_circle():
    g = graph()
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d in g and not state.get(d):
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if not state.get(m):
            visit(m, [m])


def test_the_checks_can_fail(tmp_path):
    """The graph reader sees a lazy import inside a function (the kind that hides an arrow up)."""
    f = PKG / "config" / "settings.py"
    assert "featevo.config.reads" in imports(f)
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from featevo.stages import train\n    import featevo.measures.stats\n")
    assert imports(probe) == {"featevo.stages.train", "featevo.measures.stats"}
