"""A configuration's round trip through dicts and JSON, unknown fields refused.

`config.Config` takes these methods from `JsonFields`, so that a run's resolved
configuration can be saved in its workdir and read back (`bin/train --config_file`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Self

from tf_lifelong.config.checks import ConfigError


def refuse_unknown(names: Any, known: Any) -> None:
  """Raises ConfigError naming the `names` that are not `known` fields (sorted)."""
  unknown = sorted(set(names) - set(known))
  if unknown:
    raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")


class JsonFields:
  """Methods of a frozen dataclass of settings: to and from dicts and JSON."""

  TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ()
  """Fields that hold tuples (JSON gives lists back)."""

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict[str, Any]) -> Self:
    refuse_unknown(values, (f.name for f in dataclasses.fields(cls)))
    fixed = dict(values)
    for name in cls.TUPLE_FIELDS:
      if fixed.get(name) is not None:
        fixed[name] = tuple(fixed[name])
    return cls(**fixed)

  @classmethod
  def from_json(cls, text: str) -> Self:
    try:
      values = json.loads(text)
    except json.JSONDecodeError as e:
      raise ConfigError(f"configuration is not valid JSON: {e}") from None
    if not isinstance(values, dict):
      raise ConfigError("configuration JSON must be an object")
    return cls.from_dict(values)

  def replace_checked(self, **changes: Any) -> Self:
    """A copy with `changes` (validated); unknown fields are a ConfigError."""
    refuse_unknown(changes, (f.name for f in dataclasses.fields(self)))
    return self.from_dict({**self.to_dict(), **changes})
