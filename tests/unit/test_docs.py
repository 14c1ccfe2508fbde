"""Documentation that must not drift from the code.

The docs test reads every guide (docs/*.md, README.md, catalogue/README.md,
contextualisation/*.md) and fails on a code name it quotes that does not exist:

- **dotted names** in inline code that start with one of the project's packages (``portal.``,
  ``catalogue.``, ``contextualisation.``, ``cvmfs.``, ``vm_images.``, with or without
  ``daaas.``), written ``module.attr`` or ``module:attr``: imported and looked up;
- **imports** in fenced ``python`` blocks: they must use ``daaas.`` (the wheel installs nothing
  else) and the imported names must exist;
- **paths** in inline code that start with a top-level folder of the checkout
  (``portal/hpc/machine.py``, ``tests/unit/``) and contain no placeholder, and paths under
  ``benchmarks/``, ``tests/`` or ``.ci/`` anywhere in code (``python benchmarks/x.py``): the file
  exists;
- **settings**: the first column of a table whose header starts ``| key |``, every top-level
  ``name = value`` of a fenced ``toml`` block (unless its first line is a comment naming another
  ``*.toml`` file, like the ICAT credentials file), and a name quoted right after the word
  "setting": each must be a field of :class:`daaas.portal.config.Settings`;
- **commands**: ``daaas WORD [WORD]`` in any code (inline, fenced or indented) must be a path in
  the ``daaas`` click command tree; ``daaas users list | set-password`` lists alternatives;
- **links**: a relative Markdown link ``[text](path#anchor)`` points at a file that exists and,
  for a Markdown file, a heading with that anchor.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from daaas.portal.cli import main as cli_main
from daaas.portal.config import Settings

ROOT = Path(__file__).resolve().parents[2]  # the checkout: the guides live beside the code

PACKAGES = ("portal", "catalogue", "contextualisation", "cvmfs", "vm_images")
TOP_FOLDERS = (*PACKAGES, "tests", "benchmarks", "docs", ".ci", "daaas")
NOT_CODE_SUFFIXES = {"md", "py", "yaml", "yml", "toml", "json", "txt", "svg", "png", "sh", "cfg",
                     "conf", "ini", "rst", "service", "key", "pub", "org", "com", "net", "uk",
                     "ch", "log", "out"}

DOTTED = re.compile(
    r"(?<![\w./:@<~-])(?:daaas\.)?(?:" + "|".join(PACKAGES) + r")"
    r"(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?(?![\w/-])")
TOOL_PATH = re.compile(r"(?<![\w/.-])(?:benchmarks|tests|\.ci)/[\w./-]*[\w/]")
PATH = re.compile(r"(?:" + "|".join(re.escape(f) for f in TOP_FOLDERS) + r")/[\w./-]*")
COMMAND = re.compile(r"(?:^|(?<=[\s/(`$]))daaas((?: +(?:[a-z][\w-]*|\|))+)")
INLINE = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
TOML_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=")
AFTER_SETTING = re.compile(r"\bsetting\s+`([^`\s]+)`")
SETTINGS_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")
LINK = re.compile(r"\]\(([^()\s]+)\)")


@dataclass(frozen=True)
class Code:
    """One piece of code in a document: ``kind`` is inline, fenced or indented."""

    line: int
    kind: str
    text: str
    lang: str = ""


@dataclass
class Document:
    """A Markdown document split into prose (code blanked out) and its pieces of code."""

    name: str
    text: str

    def __post_init__(self) -> None:
        self.prose, self.blocks = _split_blocks(self.text)

    def inline(self) -> Iterator[Code]:
        """Yield the inline code spans of the prose, with the line each starts on."""
        for m in INLINE.finditer(self.prose):
            yield Code(self.prose.count("\n", 0, m.start()) + 1, "inline",
                       " ".join(m.group(2).split()))

    def code(self) -> Iterator[Code]:
        """Yield every piece of code: inline spans, then fenced and indented blocks."""
        yield from self.inline()
        yield from self.blocks


def _split_blocks(text: str) -> tuple[str, list[Code]]:
    """Return the text with code blocks blanked out (line numbers kept), and the blocks."""
    prose: list[str] = []
    blocks: list[Code] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            marker, start, body = fence.group(2), i, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            blocks.append(Code(start + 2, "fenced", _dedent(body), fence.group(3).lower()))
            prose.extend([""] * (i - start + 1))
            i += 1
            continue
        previous_blank = i == 0 or not lines[i - 1].strip() or (prose and prose[-1] == "")
        if line.startswith("    ") and line.strip() and previous_blank \
                and not re.match(r"\s*([-*+]|\d+\.)\s", line):
            blocks.append(Code(i + 1, "indented", line.strip()))
            prose.append("")
        else:
            prose.append(line)
        i += 1
    return "\n".join(prose), blocks


def _dedent(lines: list[str]) -> str:
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)


# --- resolving names -------------------------------------------------------------------------

def resolve(name: str) -> str | None:
    """Return None when ``name`` (``pkg.module.attr`` or ``pkg.module:attr``, with or without
    ``daaas.``) exists in the installed project, else why not."""
    name = name.removeprefix("daaas.")
    module_part, _, attr_part = name.partition(":")
    parts = module_part.split(".")
    attrs = attr_part.split(".") if attr_part else []
    module = None
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module("daaas." + ".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("daaas."):
                return f"importing it fails: {exc}"
            if attrs:
                return f"no module daaas.{module_part}"
            continue
        attrs = parts[cut:] + attrs
        break
    if module is None:
        return f"no module daaas.{parts[0]}"
    target: object = module
    where = module.__name__
    for attr in attrs:
        if attr in _fields(target):
            return None  # a field of a pydantic model or dataclass: no attribute to follow
        if not hasattr(target, attr):
            return f"{where} has no {attr!r}"
        target, where = getattr(target, attr), f"{where}.{attr}"
    return None


def _fields(target: object) -> set[str]:
    """Return the field names of a pydantic model or dataclass class (class attributes
    pydantic does not keep), else nothing."""
    names = set(getattr(target, "model_fields", None) or ())
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        names.update(f.name for f in dataclasses.fields(target))
    return names


def check_dotted(doc: Document) -> list[str]:
    """Dotted names in inline code that do not exist."""
    problems = []
    for code in doc.inline():
        for m in DOTTED.finditer(code.text):
            if m.group(0).rsplit(".", 1)[-1] in NOT_CODE_SUFFIXES:
                continue
            why = resolve(m.group(0))
            if why:
                problems.append(f"{doc.name}:{code.line}: `{m.group(0)}`: {why}")
    return problems


def check_python_blocks(doc: Document) -> list[str]:
    """Imports in fenced python blocks that the installed wheel would not satisfy."""
    problems = []
    for code in doc.blocks:
        if code.kind != "fenced" or code.lang not in ("python", "py"):
            continue
        for node in ast.walk(ast.parse(code.text)):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                names = [(a.name, "") for a in node.names]
            else:
                continue
            line = code.line + node.lineno - 1
            if names[0][0].split(".")[0] in PACKAGES:
                problems.append(f"{doc.name}:{line}: `import {names[0][0]}`: the wheel installs "
                                f"it as daaas.{names[0][0]}")
                continue
            for module, attr in names:
                if module.split(".")[0] == "daaas":
                    why = resolve(f"{module}:{attr}" if attr else module)
                    if why:
                        problems.append(f"{doc.name}:{line}: `{module} {attr}`: {why}")
    return problems


def check_paths(doc: Document) -> list[str]:
    """Paths into the checkout (whole inline spans, no placeholders) that do not exist."""
    problems = []
    for code in doc.inline():
        m = PATH.fullmatch(code.text)
        if m and not (ROOT / code.text).exists() and not _relative_to_doc(doc, code.text):
            problems.append(f"{doc.name}:{code.line}: `{code.text}`: no such file or folder")
    for code in doc.blocks:
        for m in TOOL_PATH.finditer(code.text):
            if not (ROOT / m.group(0)).exists():
                problems.append(f"{doc.name}:{code.line}: {m.group(0)}: no such file or folder")
    return problems


def _relative_to_doc(doc: Document, path: str) -> bool:
    return (ROOT / doc.name).parent.joinpath(path).exists()


def setting_names(doc: Document) -> Iterator[tuple[int, str]]:
    """Yield (line, name) for every name the document presents as a setting."""
    in_table = False
    for number, line in enumerate(doc.prose.split("\n"), start=1):
        if line.startswith("|"):
            in_table = in_table or bool(re.match(r"\|\s*key\s*\|", line))
            row = SETTINGS_ROW.match(line)
            if in_table and row:
                yield number, row.group(1)
        else:
            in_table = False
    for code in doc.blocks:
        if code.kind != "fenced" or code.lang != "toml":
            continue
        first = code.text.lstrip().split("\n", 1)[0]
        if first.startswith("#") and ".toml" in first and "daaas.toml" not in first:
            continue  # another file's example (e.g. the ICAT credentials file)
        for offset, line in enumerate(code.text.split("\n")):
            if line.lstrip().startswith("["):
                break
            key = TOML_KEY.match(line)
            if key:
                yield code.line + offset, key.group(1)
    for m in AFTER_SETTING.finditer(doc.prose):
        yield doc.prose.count("\n", 0, m.start()) + 1, m.group(1)


def check_settings(doc: Document) -> list[str]:
    """Names presented as settings that are not fields of Settings."""
    return [f"{doc.name}:{line}: setting `{name}` is not a field of daaas.portal.config.Settings"
            for line, name in setting_names(doc) if name not in Settings.model_fields]


def command_lines(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """Yield ``(words, options)`` for each ``daaas`` command line in ``text``: the command's
    words (alternatives separated by ``|``) and the ``--options`` written after them on the same
    line, up to a comment or the next shell command."""
    for m in COMMAND.finditer(text):
        words = m.group(1).split()
        if not words or words[0] == "|":
            continue
        rest = re.split(r" #|\s(?:\||&&|;)\s|\n", text[m.end():], maxsplit=1)[0]
        yield words, re.findall(r"(?<![\w-])--[a-z][\w-]*", rest)


def check_command(words: list[str], options: Iterable[str] = (),
                  group: click.Group = cli_main) -> str | None:
    """Return None when ``daaas WORDS… OPTIONS…`` is a command of the click tree with those
    options, else why not. ``list | set-password`` are two choices at the same level."""
    path = ["daaas"]
    command: click.Command = group
    i = 0
    while i < len(words) and isinstance(command, click.Group):
        choices = [words[i]]
        while i + 2 < len(words) and words[i + 1] == "|":
            choices.append(words[i + 2])
            i += 2
        for word in choices:
            if word not in command.commands:
                known = ", ".join(sorted(command.commands))
                return f"`{' '.join(path)}` has no command {word!r} (it has: {known})"
        command = command.commands[choices[-1]]
        path.append(choices[-1])
        i += 1
    if isinstance(command, click.Group):
        return None
    known_options = {"--help"}.union(*(p.opts + p.secondary_opts for p in command.params))
    for option in options:
        if option not in known_options:
            return f"`{' '.join(path)}` has no option {option}"
    return None


def check_commands(doc: Document) -> list[str]:
    """``daaas …`` commands (and their options) quoted in code that the command line lacks."""
    problems = []
    for code in doc.code():
        for words, options in command_lines(code.text):
            why = check_command(words, options)
            if why:
                problems.append(f"{doc.name}:{code.line}: `daaas {' '.join(words)}`: {why}")
    return problems


def anchors(text: str) -> set[str]:
    """Return the anchors GitHub gives the headings of a Markdown text."""
    headings = (line.lstrip("#").strip() for line in _split_blocks(text)[0].split("\n")
                if line.startswith("#"))
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def check_links(doc: Document) -> list[str]:
    """Relative links to files or headings that do not exist."""
    problems = []
    for m in LINK.finditer(doc.prose):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:, ...
        path, _, anchor = target.partition("#")
        file = (ROOT / doc.name).parent / path
        line = doc.prose.count("\n", 0, m.start()) + 1
        if path and not file.exists():
            problems.append(f"{doc.name}:{line}: link to {target}: no such file")
            continue
        if not anchor or (path and file.suffix != ".md"):
            continue
        text = file.read_text(encoding="utf-8") if path else doc.text
        if anchor not in anchors(text):
            problems.append(f"{doc.name}:{line}: link to {target}: no heading #{anchor}")
    return problems


def check_document(doc: Document) -> list[str]:
    """Every problem of one document, one line each."""
    return [*check_dotted(doc), *check_python_blocks(doc), *check_paths(doc),
            *check_settings(doc), *check_commands(doc), *check_links(doc)]


def guides() -> list[Path]:
    """The documents the docs test reads."""
    return sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md",
                   ROOT / "catalogue" / "README.md", *(ROOT / "contextualisation").glob("*.md")])


# --- the tests -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", guides(), ids=lambda p: str(p.relative_to(ROOT)))
def test_code_names_in_the_docs_exist(path: Path) -> None:
    doc = Document(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
    problems = check_document(doc)
    assert not problems, "names in the docs that the code does not have:\n" + "\n".join(problems)


def test_every_setting_is_in_the_admin_guide() -> None:
    guide = (ROOT / "docs" / "admin.md").read_text(encoding="utf-8")
    for key in Settings.model_fields:
        assert f"| `{key}` | `DAAAS_{key.upper()}` |" in guide, f"{key} missing from docs/admin.md"


def test_the_settings_table_gives_the_real_defaults() -> None:
    """The admin guide's default column matches Settings (``empty`` for "", folders shipped
    with the package described in words)."""
    guide = (ROOT / "docs" / "admin.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `DAAAS_\w+` \| ([^|]*) \|", guide, re.MULTILINE)
    assert len(rows) == len(Settings.model_fields)
    for key, written in rows:
        default = Settings.model_fields[key].default
        if isinstance(default, bool):
            expected = f"`{str(default).lower()}`"
        else:
            expected = f"`{default}`" if default != "" else "empty"
        if written.strip().startswith("the shipped"):
            continue
        assert written.strip() == expected, f"{key}: docs say {written.strip()}, code {default!r}"


def test_readme_screenshot_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/screenshots/analysis.png)" in readme
    assert (ROOT / "docs" / "screenshots" / "analysis.png").stat().st_size > 20_000


# --- the checker itself, on made-up documents -------------------------------------------------

GOOD = """\
The one place is `portal.db.unit_of_work` (also `daaas.portal.db:unit_of_work`, and
`contextualisation.render_user_data()`, `contextualisation.Context.icon_dir`), in
`portal/db.py`. Hosts such as `portal.example.org`, files such as `catalogue.yaml` and the
agent `daaas-bootstrap` are not code names; nor is Nova's
`shelved_offload_time = 0`. Run `daaas catalogue check
[DIR]` or `daaas users list | set-password NAME`.

| key | environment variable | default |
|---|---|---|
| `var_dir` | `DAAAS_VAR_DIR` | `var` |

| field | meaning |
|---|---|
| `plugin` | not a setting: this table is not the settings table |

```toml
provider = "openstack"
```

```toml
# /etc/daaas/icat.toml
plugin = "ldap"
```

```python
from daaas.catalogue import load_catalogue
```

    daaas images build ENV --rootfs-only --output x.qcow2   # --not-checked in a comment
    daaas users list | set-password NAME
    chown daaas /etc/daaas/icat.toml
    .venv/bin/python benchmarks/api_latency.py; .venv/bin/pytest tests/integration -k hpc

See [User storage](docs/admin.md#user-storage), [the top](#the-top) and [a site](https://x.org/a).

## The top
"""


def test_the_checker_accepts_what_exists() -> None:
    assert check_document(Document("good.md", GOOD)) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("see `portal.db.no_such_function`", "daaas.portal.db has no 'no_such_function'"),
    ("see `daaas.portal.machines.service:made_up`", "has no 'made_up'"),
    ("see `portal.nowhere.thing`", "has no 'nowhere'"),
    ("see `catalogue.cli:nothing_here`", "has no 'nothing_here'"),
    ("see `contextualisation.Context.no_field`", "Context has no 'no_field'"),
    ("code in `portal/hpc/no_such_module.py`", "no such file or folder"),
    ("    .venv/bin/python benchmarks/no_such.py --runs 3", "no such file or folder"),
    ("```python\nfrom catalogue import load_catalogue\n```", "installs it as daaas.catalogue"),
    ("```python\nfrom daaas.catalogue import no_such_name\n```", "has no 'no_such_name'"),
    ("| key | variable |\n|---|---|\n| `no_such_setting` | x |", "`no_such_setting` is not"),
    ("```toml\nmade_up_setting = 1\n```", "`made_up_setting` is not"),
    ("the site setting\n`icon_dir`", "`icon_dir` is not"),
    ("run `daaas users frobnicate NAME`", "no command 'frobnicate'"),
    ("run `daaas launch ENV`", "no command 'launch'"),
    ("    daaas users list | remove NAME", "no command 'remove'"),
    ("    daaas images build | upload | nosuch", "no command 'nosuch'"),
    ("run `daaas catalogue check --no-such-option DIR`", "has no option --no-such-option"),
    ("    daaas users add NAME [--admin] [--colour C]  # --fake", "no option --colour"),
    ("```sh\n.venv/bin/daaas images nosuch ccp4\n```", "no command 'nosuch'"),
    ("see [the guide](docs/no-such-guide.md)", "no such file"),
    ("see [storage](docs/admin.md#no-such-heading)", "no heading #no-such-heading"),
])
def test_the_checker_finds_a_broken_name(text: str, expected: str) -> None:
    problems = check_document(Document("broken.md", text))
    assert len(problems) == 1 and expected in problems[0], problems
