"""The one way the engine reads YAML that people edit (flows, the contingency
plan, seats, queues, announcement sets, the callback policy, drill profiles,
prompt texts): bounded, so a small hostile file cannot cost seconds of CPU.

- Anchors and aliases are refused. With them a 500-byte file can name a
  billion nodes ("billion laughs"): ``compose`` itself shares the nodes, but
  every validator walking them pays for each one. No staff file needs them.
- A file is at most ``MAX_BYTES`` and nests at most ``MAX_DEPTH`` levels.

Errors carry ``line:col`` (1-based) and are written Chinese first.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import yaml

from ivr.errors import ConfigError, YamlRefused

MAX_BYTES = 256 * 1024   # the shipped files are a few KB; main.yaml is 3 KB
MAX_DEPTH = 64

ANCHORS_REFUSED = "不允许使用 YAML 锚点/别名 (anchors and aliases are not allowed)"
TOO_DEEP = f"嵌套层级过深 (nested more than {MAX_DEPTH} levels)"


def too_large(size: int) -> str:
    return f"文件过大 (file too large): {size} 字节 bytes, 上限 at most {MAX_BYTES}"


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
        # the pure-Python SafeLoader's marks (the stubs also allow the C loader's)
        mark = cast(yaml.Mark, event.start_mark)
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise YamlRefused(problem=ANCHORS_REFUSED, problem_mark=mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlRefused(problem=TOO_DEEP, problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_size(text: str) -> None:
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise YamlRefused(problem=too_large(size), problem_mark=yaml.Mark("", 0, 0, 0, None, 0))


def compose(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (positions kept, for ``file:line:col``).
    Raises ``yaml.MarkedYAMLError``: ``YamlRefused`` or a syntax error."""
    _check_size(text)
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def location(exc: yaml.YAMLError) -> tuple[int, int]:
    """1-based (line, col) of a PyYAML error; (1, 1) when it has none."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    key_mark = getattr(exc, "context_mark", None)
    if getattr(exc, "problem", None) == "could not find expected ':'" and key_mark:
        mark = key_mark                 # the key without its colon, not the line where the parser noticed
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


# PyYAML's problems staff meet most, said the way a person fixes them
_HINTS = (
    ("expected <block end>", "缩进有误：这一行与同级的键没有对齐（YAML 用空格缩进，同一级要对齐）",
     "indentation: this line does not line up with the keys at its level"),
    ("found character '\\t' that cannot start any token", "不能用制表符（Tab）缩进，请改用空格",
     "a tab cannot indent YAML: use spaces"),
    ("mapping values are not allowed here", "这里不能再有“键: 值”：可能缩进有误，或值里的冒号需要加引号",
     "a key: value is not allowed here: check the indentation, or quote a value that holds a colon"),
    ("could not find expected ':'", "缺少冒号 ':'：键后面要有冒号和空格，如 'name: 值'", "a ':' is missing: a key is "
     "followed by a colon and a space, as in 'name: value'"),
)


def message(exc: yaml.YAMLError) -> str:
    """What to tell the author (after ``file:line:col: ``)."""
    if isinstance(exc, YamlRefused):
        return exc.problem or ""
    problem = getattr(exc, "problem", None) or str(exc)
    for start, zh, en in _HINTS:
        if problem.startswith(start):
            return f"{zh} — {en}"          # the parser's own words ("expected <block end>") say nothing to staff
    return f"YAML syntax: {problem}"


def load(text: str, path: str) -> object:
    """Plain Python data from ``text`` (for the simple files read without
    positions). Raises ``ConfigError`` ``path:line:col: message``."""
    try:
        node = compose(text)
        if node is None:
            return None
        loader = _BoundedLoader("")
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        line, col = location(exc)
        raise ConfigError(f"{path}:{line}:{col}: {message(exc)}") from None


def read(path: Path, shown: str | None = None) -> str:
    """A staff-edited file's text, refusing one larger than ``MAX_BYTES``
    before reading it. Raises ``ConfigError`` (missing, unreadable, too large)."""
    shown = shown or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{shown}:1:1: {too_large(size)}")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{shown}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: 不是 UTF-8 文本 (not UTF-8 text): {exc.reason}") from exc
