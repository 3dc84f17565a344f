"""Loading a policy pack directory: pack, purposes, fields, rules and context YAML files."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from tactful.consent import PurposeCatalog
from tactful.errors import PolicyError
from tactful.policy.model import ContextCatalog, PackMeta, RuleFile
from tactful.segments import PackContext, SegmentFile, setting_kinds
from tactful.settings import Settings
from tactful.store import ProfileSchema

FILES = ("pack.yaml", "purposes.yaml", "fields.yaml", "rules.yaml")
# Read by tactful.consent (age of digital consent, signal mapping); hashed when present so a
# change to them changes the policy hash recorded in every decision.
OPTIONAL_FILES = ("age_of_consent.yaml", "signals.yaml", "segments.yaml", "context.yaml")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class PolicyPack:
    """A validated policy pack and the content hash recorded in every decision."""

    directory: Path
    meta: PackMeta
    purposes: PurposeCatalog
    schema: ProfileSchema
    rules: RuleFile
    content_hash: str
    # segments.yaml (optional): segments the gate evaluates on personalized decisions.
    segments: SegmentFile = field(default_factory=SegmentFile)
    context: ContextCatalog = field(default_factory=ContextCatalog)
    # SHA-256 of each file as loaded (a reload compares them to what it may not change).
    files: Mapping[str, str] = field(default_factory=dict)


def default_directory() -> Path:
    """The shipped default pack: package data in a wheel, the repo's policies/ in a checkout."""
    shipped = Path(str(resources.files("tactful") / "_policies"))
    if (shipped / "pack.yaml").is_file():
        return shipped
    checkout = Path(__file__).resolve().parents[3] / "policies"
    if (checkout / "pack.yaml").is_file():
        return checkout
    raise PolicyError(
        "the default policy pack is missing from this installation; reinstall tactful or pass "
        "policies=DIR (or set TACTFUL_POLICIES)"
    )


def load_pack(directory: Path | None = None) -> PolicyPack:
    """Load and validate a pack; PolicyError names the file, the key and what is wrong."""
    root = Path(directory) if directory is not None else default_directory()
    if not root.is_dir():
        raise PolicyError(f"policy directory {root} does not exist; pass an existing directory")
    raw: dict[str, bytes] = {}
    for name in FILES:
        path = root / name
        if not path.is_file():
            raise PolicyError(
                f"policy pack {root} has no {name}; every pack needs {', '.join(FILES)}"
            )
        raw[name] = path.read_bytes()
    for name in OPTIONAL_FILES:
        if (root / name).is_file():
            raw[name] = (root / name).read_bytes()
    digest = hashlib.sha256()
    for name in (*FILES, *OPTIONAL_FILES):
        if name in raw:
            digest.update(name.encode() + b"\0" + raw[name] + b"\0")
    meta = parse_yaml(root / "pack.yaml", raw["pack.yaml"], PackMeta)
    purposes = parse_yaml(root / "purposes.yaml", raw["purposes.yaml"], PurposeCatalog)
    schema = parse_yaml(root / "fields.yaml", raw["fields.yaml"], ProfileSchema)
    rules = parse_yaml(root / "rules.yaml", raw["rules.yaml"], RuleFile)
    context = (
        parse_yaml(root / "context.yaml", raw["context.yaml"], ContextCatalog)
        if "context.yaml" in raw
        else ContextCatalog()
    )
    _cross_check(root, purposes, rules)
    segments = SegmentFile()
    if "segments.yaml" in raw:
        pack_context = PackContext(
            schema,
            setting_kinds(),
            {pid: (p.profiling, p.data_categories) for pid, p in purposes.purposes.items()},
        )
        segments = parse_yaml(
            root / "segments.yaml", raw["segments.yaml"], SegmentFile, {"pack": pack_context}
        )
    files = {name: hashlib.sha256(data).hexdigest() for name, data in raw.items()}
    return PolicyPack(
        root,
        meta,
        purposes,
        schema,
        rules,
        digest.hexdigest(),
        segments=segments,
        context=context,
        files=MappingProxyType(files),
    )


def parse_yaml(
    path: Path, data: bytes, model: type[M], context: dict[str, object] | None = None
) -> M:
    """Parse and validate one YAML file; PolicyError names the file, line, key and problem.

    `context` is passed to pydantic's validation context (segments.yaml needs the pack's).
    """
    try:
        doc: Any = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(
            f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    try:
        return model.model_validate(doc, context=context)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        line = _line_of(data, first["loc"])
        where = f"{path}:{line}" if line is not None else str(path)
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise PolicyError(f"{where}: at {key}: {first['msg']}{more}") from None


def _line_of(data: bytes, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location (nearest existing parent).

    The document is composed a second time only on the error path, so loading a valid pack
    costs nothing extra. A missing key points at the mapping that should have held it.
    """
    try:
        node: yaml.Node | None = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    child = v
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _cross_check(root: Path, purposes: PurposeCatalog, rules: RuleFile) -> None:
    seen: set[str] = set()
    for rule in rules.rules:
        if rule.id in seen:
            raise PolicyError(f"{root / 'rules.yaml'}: rule id {rule.id!r} is used twice")
        seen.add(rule.id)
        named = (*rule.match.purposes, *(rule.match.consent_to or ()))
        for pid in named:
            if pid != "*" and pid not in purposes.purposes:
                raise PolicyError(
                    f"{root / 'rules.yaml'}: rule {rule.id!r} names purpose {pid!r}, which "
                    f"purposes.yaml does not declare (declared: {', '.join(purposes.ids())})"
                )
        for key, value in (rule.match.settings or {}).items():
            known = Settings.model_fields
            if key not in known:
                raise PolicyError(
                    f"{root / 'rules.yaml'}: rule {rule.id!r} matches setting {key!r}, which "
                    f"users do not have (settings: {', '.join(known)})"
                )
            if isinstance(value, str) or key == "excluded_topics":
                raise PolicyError(
                    f"{root / 'rules.yaml'}: rule {rule.id!r} matches setting {key!r} with "
                    f"{value!r}; match a true/false switch or the discovery level (a number)"
                )
