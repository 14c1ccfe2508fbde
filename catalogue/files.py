"""Reading one catalogue file: YAML to a mapping, or the problem that stops it being read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Return the mapping; raise ConstructorError (with the line) on a repeated key."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                problem = f"found the key {key!r} twice; keep one"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class UnreadableFile(Exception):
    """A catalogue file that is not a YAML mapping: ``message`` says why, ``line`` where."""

    def __init__(self, message: str, line: int | None = None) -> None:
        """Keep the message and the line (from 1) the YAML parser stopped at, if known."""
        super().__init__(message)
        self.message, self.line = message, line


def read_entry(path: Path) -> dict[str, Any]:
    """Return the file's top-level mapping; raise UnreadableFile if there is none."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark, reason = error.problem_mark or error.context_mark, error.problem or error.context
        if error.problem and error.context and error.context_mark:
            reason = f"{reason} {error.context} from line {error.context_mark.line + 1}"
        message = f"invalid YAML ({reason}); check the indentation, colons and quotes"
        raise UnreadableFile(message, mark.line + 1 if mark else None) from error
    except yaml.YAMLError as error:
        raise UnreadableFile(f"invalid YAML ({error})") from error
    except (OSError, UnicodeDecodeError) as error:
        raise UnreadableFile(f"cannot read the file ({error})") from error
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise UnreadableFile(f"expected a mapping of environment fields, found {found}")
    return data
