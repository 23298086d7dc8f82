"""A stage's settings: the config sections it reads, validated, as one frozen object.

A rule hands its job the sections whole, as one JSON argument (``--settings``,
written by :func:`featevo.cli.settings`); the stage validates them against the
workflow's schema, which fills in every default, and passes library functions a
read-only :class:`Settings` (``s.visualize.median_every``).  A setting is thus
written in the schema and in the code that reads it, nowhere else; reading a key
the schema does not have is an error that says where a new setting goes
(tests/test_settings.py ties both ways).

By hand, ``--settings @config.yaml`` reads a config file (the schema's defaults
fill in what it leaves out), and ``--settings '{"visualize": {"steps": 50}}'``
changes one setting of the defaults.  Standard library, PyYAML and jsonschema
only (no Snakemake: ``snakemake.utils.validate`` fills defaults the same way, but
importing Snakemake costs every job about a second).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from featevo.config_checks import SCHEMA_FILE, _resolve, schema_defaults, schema_errors


class Settings(Mapping):
    """Read-only settings with attribute access; nested sections are Settings too,
    lists are tuples.  ``name`` is the dotted config key, for messages."""

    __slots__ = ("_data", "_name")

    def __init__(self, data: Mapping, name: str = "config"):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_data", {k: _frozen(v, f"{name}.{k}") for k, v in data.items()})

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(
                f"{self._name} has no setting {key!r} (it has {', '.join(sorted(self._data)) or 'none'}); "
                "a new setting is written in workflow/schemas/config.schema.yaml, with its default") from None

    def __setattr__(self, key, value):
        raise AttributeError(f"{self._name} is read-only")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Settings({self._name}: {self.to_dict()!r})"

    def to_dict(self) -> dict:
        """Plain dicts and lists again (e.g. to store beside a result)."""
        return {k: _plain(v) for k, v in self._data.items()}

    def replace(self, **changes) -> Settings:
        """A copy with some settings changed (a recipe derived from another)."""
        return Settings({**self.to_dict(), **changes}, self._name)


def _frozen(value, name: str):
    if isinstance(value, Mapping):
        return value if isinstance(value, Settings) else Settings(value, name)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v, f"{name}[{i}]") for i, v in enumerate(value))
    return value


def _plain(value):
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _merged(defaults: dict, given: dict) -> dict:
    out = dict(defaults)
    for k, v in given.items():
        out[k] = _merged(defaults[k], v) if isinstance(v, dict) and isinstance(defaults.get(k), dict) else v
    return out


@functools.cache
def _schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_FILE.read_text())


def parse(text: str, *sections: str) -> Settings:
    """``--settings`` of a stage: JSON, or ``@FILE`` (a YAML or JSON config), holding
    ``sections`` (each whole or in part); each is checked against the schema and
    completed with its defaults.  Bad settings end the job with every error named."""
    import yaml

    if text.startswith("@"):
        path = Path(text[1:])
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SystemExit(f"error: --settings {text}: cannot read {path} ({exc})") from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"error: --settings is not JSON ({exc}); give a JSON object, or @FILE") from None
    if not isinstance(raw, dict):
        raise SystemExit("error: --settings must be a mapping of config sections")
    schema = _schema()
    defaults = schema_defaults(schema, schema)
    props = schema["properties"]
    unknown = [s for s in sections if s not in props]
    if unknown:
        raise ValueError(f"no config sections {unknown} in the schema")
    out, errors = {}, []
    for name in sections:
        given = raw.get(name, {})
        base = defaults.get(name, {})
        value = _merged(base, given) if isinstance(given, dict) and isinstance(base, dict) else given
        node = _resolve(props[name], schema)
        # a job gets the parts of a section it reads: keys the schema requires may be absent
        part = {**schema, "required": [], "properties": {name: {k: v for k, v in node.items() if k != "required"}}}
        errors += schema_errors({name: value}, part)
        out[name] = value
    if errors:
        raise SystemExit("error: --settings: " + "; ".join(errors))
    return Settings(out)
