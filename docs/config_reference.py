"""Writes docs/config.md, the reference of every setting, from the workflow's schema
(workflow/schemas/config.schema.yaml): its one source.  tests/test_settings.py fails
when the page and the schema differ.

    python docs/config_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "workflow" / "schemas" / "config.schema.yaml"
HEAD = """# Configuration reference

Every setting, its type, default and meaning, as the schema
(`workflow/schemas/config.schema.yaml`) declares them; `config.yaml` (the demo) and
`configs/paper.yaml` set some of them, and the schema fills in the rest. Written by
`python docs/config_reference.py` from the schema, never by hand
(`tests/test_settings.py` fails when it is stale). A setting reaches the stages that
read it as part of their `--settings` (`featevo.config.reads.READS`; docs/development.md).
"""


def _resolve(node: dict, schema: dict) -> dict:
    if "$ref" in node:
        return {**schema["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    t = node.get("type", "")
    t = " or ".join(t) if isinstance(t, list) else t
    if t == "array" and isinstance(node.get("items"), dict) and "type" in node["items"]:
        t = f"list of {node['items']['type'] if 'properties' not in node['items'] else 'mappings'}"
    return t


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(node: dict, schema: dict, prefix: str, required: set[str]):
    """(key, type, default, description) of every setting under ``node``."""
    node = _resolve(node, schema)
    for key, prop in node.get("properties", {}).items():
        prop = _resolve(prop, schema)
        name = f"{prefix}{key}"
        if "properties" in prop:
            yield from _rows(prop, schema, f"{name}.", set(prop.get("required", [])))
            continue
        default = "required" if key in required else ("" if "default" not in prop else
                                                        f"`{json.dumps(prop['default'])}`")
        yield name, _type(prop), default, prop.get("description", "")
        items = prop.get("items") if prop.get("type") == "array" else None
        if isinstance(items, dict) and "properties" in items:
            yield from _rows(items, schema, f"{name}[].", set(items.get("required", [])))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _rows(extra, schema, f"{prefix}<name>.", set(extra.get("required", [])))


def reference(schema: dict) -> str:
    out = [HEAD]
    top = [k for k, v in schema["properties"].items() if "properties" not in _resolve(v, schema)
           and not isinstance(v.get("additionalProperties"), dict)]
    sections = [("run", {"properties": {k: schema["properties"][k] for k in top}}, "")]
    sections += [(k, v, f"{k}.") for k, v in schema["properties"].items() if k not in top]
    for title, node, prefix in sections:
        node = _resolve(node, schema)
        out += [f"## {title}", ""]
        if node.get("description"):
            out += [_cell(node["description"]), ""]
        required = set(schema.get("required", [])) if title == "run" else set(node.get("required", []))
        out += ["| key | type | default | what |", "| --- | --- | --- | --- |"]
        out += [f"| `{k}` | {_cell(t)} | {_cell(d)} | {_cell(w)} |" for k, t, d, w in
                _rows(node, schema, prefix, required)]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    (ROOT / "docs" / "config.md").write_text(reference(yaml.safe_load(SCHEMA_FILE.read_text())))
