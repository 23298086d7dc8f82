"""The ground floor: the workflow's schema, its defaults and coercion, and a stage's
settings as one frozen object.

A rule hands its job the parts of the config its stage reads (``--settings``, JSON
written by :func:`featevo.config.reads.settings` from ``featevo.config.reads.READS``); the stage parses
them under the same name (:func:`parse`): they are validated against the schema,
which fills in every default, and library functions get a read-only
:class:`Settings` (``s.visualize.median_every``).  A setting is thus written in the
schema and in the code that reads it, nowhere else; reading a key the schema does
not have is an error that says where a new setting goes, and reading one the stage
does not declare in ``READS`` is an error that says to declare it (the rule would
not have passed it: the job must not quietly take the default instead).

By hand, ``--settings @config.yaml`` reads a config file (the schema's defaults
fill in what it leaves out), and ``--settings '{"visualize": {"steps": 50}}'``
changes one setting of the defaults.  Standard library, PyYAML and jsonschema
only: every job imports this (no Snakemake: importing it costs a job about a second;
no pandas, torch or the data readers: tests/test_settings.py checks).
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from featevo.config import reads as cli

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def _yaml_load(text: str):
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml's: 5x faster


@functools.cache
def _schema() -> dict:
    return _yaml_load(SCHEMA_FILE.read_text())


def schema() -> dict:
    """The workflow's JSON schema (a copy: callers may change it)."""
    return copy.deepcopy(_schema())


# ---- the schema: defaults, coercion of --config values, every error at once -----------------


def _resolve(node: dict, schema: dict) -> dict:
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):  # the definition, with what the node sets beside it (its default)
        return {**schema["$defs"][ref.rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _types(node: dict) -> list[str]:
    t = node.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def coerce(value, node: dict, schema: dict):
    """``value`` with the strings that Snakemake's ``--config`` makes of nested values
    (``train={keep_checkpoints: false}`` gives the string 'false') read as YAML
    where the schema asks for a boolean, number or null there."""
    import yaml

    node = _resolve(node, schema)
    types = _types(node)
    extra = node.get("additionalProperties")
    if isinstance(value, dict) and ("properties" in node or isinstance(extra, dict)):
        props = node.get("properties", {})
        return {k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}), schema)
                for k, v in value.items()}
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [coerce(v, node["items"], schema) for v in value]
    if isinstance(value, str) and "string" not in types and set(types) & {"boolean", "integer", "number", "null"}:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        kinds = {bool: "boolean", int: "integer", float: "number", type(None): "null"}
        kind = kinds.get(type(parsed))
        if kind in types or (kind == "integer" and "number" in types):
            return parsed
    return value


def schema_defaults(node: dict | None = None, schema: dict | None = None) -> dict:
    """Every setting the schema fills in when a config leaves it out, nested as in the
    config: what library callers (tests, the benchmark) pass for a setting they do not
    choose, so that no function keeps a default of its own that could disagree."""
    if schema is None:
        schema = node = _schema()
    out = {}
    for key, prop in _resolve(node, schema).get("properties", {}).items():
        prop = _resolve(prop, schema)
        if "properties" in prop:
            out[key] = schema_defaults(prop, schema)
        elif "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


DEVICE_SECTIONS = ("train", "visualize", "methods")  # the stages that run on a device


def shared_device(config: dict) -> dict:
    """``config`` with the top-level ``device`` given to each of :data:`DEVICE_SECTIONS`
    that does not set its own (one key for the run; a stage may still override it).
    Before the defaults: a section's device left out is the one not set."""
    device = config.get("device")
    if device is None:
        return config
    out = dict(config)
    for section in DEVICE_SECTIONS:
        part = out.get(section)
        if part is None or isinstance(part, dict):
            if (part or {}).get("device") is None:
                out[section] = {**(part or {}), "device": device}
    return out


def with_defaults(config: dict, defaults: dict | None = None) -> dict:
    """``config`` with every default of the schema filled in where it leaves a key out
    (nested sections too; the config's own values untouched)."""
    out = dict(config)
    for key, value in (schema_defaults() if defaults is None else defaults).items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = with_defaults(out[key], value)
    return out


def load_config(*files: Path) -> dict:
    """The schema's defaults with each YAML file layered on in turn, as ``snakemake
    --configfile a b`` does (Snakemake's own ``update_config``): the settings a run
    of the workflow has, for callers outside it (the benchmark)."""
    from snakemake.utils import update_config

    config: dict = {}
    for f in files:
        update_config(config, _yaml_load(Path(f).read_text()) or {})
    return with_defaults(shared_device(config))


def config_file_problems(*files: Path) -> list[str]:
    """What Snakemake's own loader passes over in each config file, one line each, naming
    the file and line: a key written twice in one mapping (the loader keeps the last
    silently: ``visualize: {steps: 5}`` then ``visualize: {restarts: 3}`` ran with the
    schema's steps), and a file whose top level is not a mapping of settings."""
    import yaml

    class Checking(yaml.SafeLoader):
        found: list[str] = []

    def mapping(loader, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                Checking.found.append(f"{name}:{key_node.start_mark.line + 1}: {key!r} is written twice in one "
                                      f"section (first at line {seen[key]}); the second would replace the first "
                                      f"whole: merge the two into one")
            else:
                seen[key] = key_node.start_mark.line + 1
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Checking.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    out = []
    for f in files:
        name = str(f)
        Checking.found = []
        try:
            data = yaml.load(Path(f).read_text(), Loader=Checking)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f":{mark.line + 1}" if mark else ""
            out.append(f"{name}{where}: not valid YAML ({exc.problem or exc}); check the indentation and brackets there")
            continue
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            out.append(f"{name}: cannot be read as YAML ({exc})")
            continue
        out += Checking.found
        if not isinstance(data, dict):
            what = "empty" if data is None else f"a {type(data).__name__}, not a mapping of settings"
            out.append(f"{name}: the file is {what}; a config file holds sections such as 'run_name: mine' "
                       f"and 'data: {{...}}' at its top level")
    return out


# keys that earlier versions accepted, and what to do instead
REMOVED = {
    ("preload",): "the fork server is gone (every job is a plain process); delete the key",
    ("visualize", "keep"): "every image is the one after the last step, as the paper's; delete the key",
    ("reference", "visualize"): "Fig. 3 is drawn with visualize.* like every checkpoint; delete the section",
}


def removed_keys(config: dict) -> list[str]:
    """One line for each key of an earlier version that ``config`` still sets."""
    out = []
    for keys, what in REMOVED.items():
        node = config
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            out.append(f"{'.'.join(keys)}: no longer a setting: {what}")
    return out


# what each of the schema's patterns asks for, in words (a test ties every pattern to one)
PATTERN_HELP = {
    r"\{epoch(:[^}]*)?\}": "a path with {epoch} in it, e.g. runs/mine/epoch_{epoch}.pt",
    r"^(auto|cpu|cuda(:[0-9]+)?)$": "auto, cpu, cuda or cuda:N",
    r"^[0-9a-f]{64}$": "a SHA-256 digest: 64 lower-case hex digits, as sha256sum prints",
    r"^[A-Za-z0-9_][A-Za-z0-9_-]*$": "letters, digits, _ and - (not first: a command line would read it as a flag) only",
    r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$": "letters, digits, _, - and . (not first) only",
    r"^[^/]+$": "one folder's name inside data.path, without /",
    r"^[^:\s]+:[0-9]+(:[0-9]+:[0-9]+)?$": "a module of the network and an index: layer:channel (e.g. layer4.1.conv2:17 "
                                           "or features.28:5), layer:channel:y:x, or a linear layer's layer:index",
    r"^[a-z][a-z0-9_]*$": "a torchvision model name in lower case, e.g. vgg16 or resnet18 "
                          "(torchvision.models.list_models())",
    r"^([a-z][a-z0-9_]*|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$":
        "a torchvision model name in lower case, e.g. vgg16 or resnet18, or your own network's "
        "package.module:factory",
    r"^n[0-9]{8}$": "an ImageNet synset id: n and eight digits, e.g. n01644373",
}


def dotted(keys) -> str:
    """A config key as the messages write it: data.classes[0].folder (a list's index in brackets)."""
    out = ""
    for k in keys:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def schema_errors(config: dict, schema: dict, at: tuple = ()) -> list[str]:
    """Every place where ``config`` breaks the schema, one line each, naming the key
    (``at``: where ``config`` sits in the whole config, for the names) and, for a
    pattern, what to write (:data:`PATTERN_HELP`); a number that is not finite (.nan,
    .inf, which JSON Schema lets through as numbers) is refused too."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    lines = [] if at else removed_keys(config)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = dotted((*at, *err.absolute_path)) or "(top level)"
        if err.validator == "pattern" and err.validator_value in PATTERN_HELP:
            msg = f"{err.instance!r} is not what it takes: {PATTERN_HELP[err.validator_value]}"
        elif err.validator in ("oneOf", "anyOf"):
            msg = _one_of(err)
        else:
            msg = _in_words(err)
        lines.append(f"{key}: {msg}")
    lines += [f"{dotted((*at, *where))}: {value} is not a finite number; write a number"
              for where, value in _non_finite(config)]
    return lines


_TYPES = {"boolean": "true or false", "integer": "a whole number", "number": "a number", "string": "text",
          "array": "a list", "object": "a mapping (key: value)", "null": "null"}


def _in_words(err) -> str:
    """A JSON-schema error as a sentence that says what to write (jsonschema's own messages
    read "is not of type 'boolean'", "has non-unique elements", "Additional properties ...")."""
    v, inst = err.validator_value, err.instance
    if err.validator == "type":
        kinds = " or ".join(_TYPES.get(t, t) for t in ([v] if isinstance(v, str) else v))
        return f"{inst!r} is not {kinds}; write {kinds}"
    if err.validator == "enum":
        return f"{inst!r} is not one of {', '.join(map(str, v))}; write one of them"
    if err.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most",
                 "exclusiveMaximum": "below"}[err.validator]
        return f"{inst!r} is out of range; write a value {bound} {v}"
    if err.validator == "uniqueItems":
        seen, twice = [], []
        for item in inst:
            (twice if item in seen and item not in twice else seen).append(item)
        return f"lists {', '.join(map(repr, twice))} more than once; write each once"
    if err.validator in ("minItems", "maxItems"):
        bound = "at least" if err.validator == "minItems" else "at most"
        return f"lists {len(inst)} item(s); write {bound} {v}"
    if err.validator == "minLength":
        return f"{inst!r} is too short; write at least {v} character(s)"
    if err.validator == "required":
        missing = [k for k in v if isinstance(inst, dict) and k not in inst]
        return f"misses {', '.join(missing)}; add {'them' if len(missing) > 1 else 'it'}"
    if err.validator == "additionalProperties" and isinstance(inst, dict):
        extra = [k for k in inst if k not in err.schema.get("properties", {})]
        return (f"{', '.join(map(repr, extra))} {'are' if len(extra) > 1 else 'is'} not a setting of this section; "
                "docs/config.md lists its keys")
    if err.validator == "contains":
        return f"{inst!r} must include {v.get('const', v)!r}; add it"
    return err.message if len(err.message) < 200 else err.message[:200] + "..."


def _one_of(err) -> str:
    """A ``oneOf`` in words (jsonschema says "is valid under each of ..." or "is not valid
    under any of the given schemas")."""
    options = err.validator_value
    if options == [{"required": ["init"]}, {"required": ["checkpoints"]}]:
        both = isinstance(err.instance, dict) and {"init", "checkpoints"} <= set(err.instance)
        return ("an experiment is trained here (init: random or reference) or is your own run's checkpoints "
                f"(checkpoints: a path with {{epoch}}); {'it sets both: keep one' if both else 'set one of them'}")
    if any(o.get("enum") == ["lucent"] for o in options if isinstance(o, dict)):
        return (f"{err.instance!r} is not a set of transforms: write lucent, [] (none), or a list of one-key "
                "mappings, e.g. [{pad: 12}, {jitter: 8}, {scale: [0.9, 1.1]}, {rotate: 10}]")
    return f"{err.instance!r} is not one of the forms this key takes (docs/config.md lists them)"


def _non_finite(node, where: tuple = ()):
    if isinstance(node, float) and not math.isfinite(node):
        yield where, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _non_finite(v, (*where, k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _non_finite(v, (*where, i))


# ---- a stage's settings ---------------------------------------------------------------------


class Settings(Mapping):
    """Read-only settings with attribute access; nested sections are Settings too,
    lists are tuples.  ``name`` is the dotted config key, for messages.

    ``handed``: which keys the stage was handed (None: all of them; else a dict of
    key -> what of it, None for all), and ``stage`` its name in ``featevo.config.reads.READS``;
    a key the schema has but the stage was not handed is an error, whether read as an
    attribute, a subscript, with ``get`` or ``in``, never a quiet default."""

    __slots__ = ("_data", "_name", "_handed", "_stage")

    def __init__(self, data: Mapping, name: str = "config", handed: dict | None = None, stage: str | None = None):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_handed", handed)
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_data", {k: _frozen(v, f"{name}.{k}", None if handed is None else handed.get(k),
                                                      stage) for k, v in data.items()})

    def _not_handed(self, key: str) -> bool:
        """A key of the schema, left out of what the stage was handed (not one the schema lacks)."""
        return (self._handed is not None and key not in self._handed and key not in self._data
                and _in_schema(self._name, key))

    def _refuse(self, key: str) -> str:
        if f"{self._name}.{key}".removeprefix("config.") in cli.OPERATIONAL:
            return (f"{self._name}.{key} is how jobs run, which no stage reads (featevo.config.reads.OPERATIONAL): a job's "
                    "threads are its --threads")
        return (f"{self._name}.{key} was not handed to {self._stage or 'this stage'}: add it to "
                f"featevo.config.reads.READS[{self._stage!r}], whose parts the rule passes and the stage reads")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __setattr__(self, key, value):
        raise AttributeError(f"{self._name} is read-only")

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            pass
        if self._not_handed(key):
            raise KeyError(self._refuse(key))
        if _in_schema(self._name, key):
            raise KeyError(f"{self._name}.{key} is not set, and the schema has no default for it: set it in the "
                           "config (or in --settings)")
        raise KeyError(f"{self._name} has no setting {key!r} (it has {', '.join(sorted(self._data)) or 'none'}); "
                       "a new setting is written in workflow/schemas/config.schema.yaml, with its default")

    def get(self, key: str, default=None):
        """``default`` where the config leaves an optional key out (a class's
        imagenet_index); an error for a key the stage was not handed."""
        if self._not_handed(key):
            raise KeyError(self._refuse(key))
        return self._data.get(key, default)

    def __contains__(self, key) -> bool:
        if self._not_handed(key):
            raise KeyError(self._refuse(key))
        return key in self._data

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
        handed = None if self._handed is None else {**self._handed, **dict.fromkeys(changes)}
        return Settings({**self.to_dict(), **changes}, self._name, handed, self._stage)


def _in_schema(name: str, key: str) -> bool:
    """Whether the schema has ``key`` under the Settings named ``name`` (config.data, config.data.classes[0])."""
    import re

    keys = tuple(int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", name)[1:])
    try:
        _node((*keys, key), _schema())
    except ValueError:
        return False
    return True


def _frozen(value, name: str, handed, stage):
    if isinstance(value, Mapping):
        return value if isinstance(value, Settings) else Settings(value, name, handed, stage)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v, f"{name}[{i}]", None, stage) for i, v in enumerate(value))
    return value


def _plain(value):
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _node(keys: tuple, schema: dict) -> dict:
    """The schema's node of a config key (``("experiments", "scratch", "freeze")``)."""
    node = schema
    for k in keys:
        node = _resolve(node, schema)
        if isinstance(k, int):
            node = node.get("items", {})
        elif k in node.get("properties", {}):
            node = node["properties"][k]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            raise ValueError(f"featevo.config.reads.READS names {'.'.join(map(str, keys))}, which the schema does not have")
    return _resolve(node, schema)


def _complete(value, node: dict, schema: dict):
    """``value`` with the schema's defaults filled in below ``node``: absent keys that
    have a default, absent sections with all of theirs, and the entries of a mapping
    of named items (experiments) each with its own."""
    node = _resolve(node, schema)
    if not isinstance(value, dict):
        return value
    props = node.get("properties", {})
    out = dict(value)
    for key, prop in props.items():
        prop = _resolve(prop, schema)
        if key in out:
            out[key] = _complete(out[key], prop, schema)
        elif "properties" in prop:  # a section left out: its defaults (an optional one without any stays out)
            if defaults := schema_defaults(prop, schema):
                out[key] = defaults
        elif "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out.update({k: _complete(v, extra, schema) for k, v in out.items() if k not in props})
    return out


def _part(node: dict) -> dict:
    """A node checked as a part: the keys it requires (and the choice between them) may be
    left out, as a job gets only the keys it reads; the whole config was checked when
    the workflow was parsed."""
    out = {k: v for k, v in node.items() if k != "required"}
    if all(set(alt) <= {"required"} for alt in out.get("oneOf", [{}])):
        out.pop("oneOf", None)
    return out


def parse(text: str, stage: str, complete=None, **fill) -> Settings:
    """``--settings`` of ``stage`` (a name in ``featevo.config.reads.READS``; ``fill``: the job's
    wildcards its parts name): JSON, or ``@FILE`` (a YAML or JSON config).  Each part
    the stage reads is checked against the schema and completed with its defaults;
    what the stage does not read is refused in JSON (a rule passes exactly those parts)
    and left aside in a config file, which ``complete`` (given) first completes as the
    workflow completes its config.  Bad settings end the job with every error named."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            raw = _yaml_load(path.read_text()) or {}
        except Exception as exc:  # OSError, yaml.YAMLError
            raise SystemExit(f"error: --settings {text}: cannot read {path} ({exc})") from None
        if complete is not None and isinstance(raw, dict):
            raw = complete(raw)
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"error: --settings is not JSON ({exc}); give a JSON object, or @FILE") from None
    if not isinstance(raw, dict):
        raise SystemExit("error: --settings must be a mapping of config sections")
    raw = shared_device(raw)  # (a config file's top-level device, as the workflow reads it)
    schema = _schema()
    out: dict = {}
    handed: dict = {}  # key -> dict of what of it, or None: all of it
    errors = []
    for left_out, keys in cli.picks(stage, **fill):
        if left_out:
            parent = _at(handed, keys[:-1], schema, out)
            parent.pop(keys[-1], None)
            _pop(out, keys)
            continue
        index = keys[-1] if isinstance(keys[-1], int) else None
        keys_ = keys[:-1] if index is not None else keys
        node = _node(keys_, schema)
        value, found = cli.lookup(raw, keys_)
        if not found and "default" in node:
            value, found = copy.deepcopy(node["default"]), True
        elif not found and "properties" in node:
            value, found = {}, True
        if not found:  # handed, but absent: an optional key (get() gives None), in its section
            _section(out, keys_[:-1])
            _mark(handed, keys_)
            continue
        value = _complete(value, node, schema)
        if index is not None and isinstance(value, list):  # seeds[0]: the first item, alone
            value = value[index:index + 1]
        errors += schema_errors(value, {"$defs": schema.get("$defs", {}), **_part(node)}, keys_)
        _put(out, keys_, value)
        _mark(handed, keys_)
    for pick in cli.OPERATIONAL:  # how jobs run: never read by a stage, even in a section it reads whole
        keys = cli.path(pick)
        if _handed(handed, keys):
            _at(handed, keys[:-1], schema, out).pop(keys[-1], None)
            _pop(out, keys)
    if text.startswith("@"):
        pass  # a config file: the parts the stage reads are taken, the rest is its other stages'
    else:
        errors += [f"{k}: given, but featevo.config.reads.READS[{stage!r}] does not read it" for k in _beyond(raw, handed)]
    errors += removed_keys(raw)
    if errors:
        raise SystemExit(f"error: --settings ({stage}): " + "; ".join(errors))
    return Settings(out, "config", handed, stage)


def _mark(handed: dict, keys: tuple) -> None:
    node = handed
    for k in keys[:-1]:
        if node.get(k, {}) is None:
            return  # already handed whole
        node = node.setdefault(k, {})
    node[keys[-1]] = None


def _handed(handed: dict, keys: tuple) -> bool:
    node = handed
    for k in keys:
        if node is None:
            return True
        if k not in node:
            return False
        node = node[k]
    return True


def _at(handed: dict, keys: tuple, schema: dict, out: dict) -> dict:
    """The handed-tree node at ``keys`` as a dict of its keys (a part handed whole is
    spelled out key by key, so that one of them can be left out)."""
    node = handed
    for i, k in enumerate(keys):
        if node.get(k, {}) is None:
            value, _ = cli.lookup(out, keys[:i + 1])
            names = set(_node(keys[:i + 1], schema).get("properties", {})) | set(value or {})
            node[k] = dict.fromkeys(names)
        node = node.setdefault(k, {})
    return node


def _section(out: dict, keys: tuple) -> dict:
    node = out
    for k in keys:
        node = node.setdefault(k, {})
    return node


def _put(out: dict, keys: tuple, value) -> None:
    _section(out, keys[:-1])[keys[-1]] = value


def _pop(out: dict, keys: tuple) -> None:
    value, found = cli.lookup(out, keys[:-1])
    if found and isinstance(value, dict):
        value.pop(keys[-1], None)


def _beyond(raw, handed, prefix: str = "") -> list[str]:
    """The keys of ``raw`` (given as JSON) outside what the stage was handed."""
    out = []
    for k, v in raw.items() if isinstance(raw, dict) else ():
        if k not in handed:
            out.append(prefix + k)
        elif handed[k] is not None:
            out += _beyond(v, handed[k], f"{prefix}{k}.")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m featevo.config.settings FILE...``: what config_file_problems finds, before
    Snakemake reads the files (its own loader stops at a file that is empty, not a mapping
    or not YAML without naming the file or line); `make run CONFIG=...` runs it first."""
    import sys

    problems = config_file_problems(*(argv if argv is not None else sys.argv[1:]))
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
