"""The user documentation in docs/, tested so it cannot drift from the code.

* every field of every spec model appears in docs/spec.md, in the section of its model, with
  the default the model really has;
* every command and option of the CLI has its place in docs/cli.md;
* every YAML spec in docs/ validates;
* every ``$ mlslo ...`` example prints what the doc shows (exactly, or as a JSON excerpt),
  and the worked examples of docs/concepts.md state the numbers the CLI produces;
* the data of examples/reference/ is what the snippets in docs/concepts.md write;
* the ``>>>`` examples of docs/python.md print what the doc shows (run as one doctest).
"""

from __future__ import annotations

import doctest
import enum
import json
import re
import shlex
import shutil
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mlslo.cli import app
from mlslo.measure.windows import standard_burn_windows
from mlslo.moments import format_duration
from mlslo.spec import Spec, Window, parse_spec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
# Docs whose ``$ mlslo`` examples are run (others, such as benchmarks.md, need big data).
RUNNABLE = ("concepts.md", "spec.md", "cli.md", "gate.md", "openslo.md", "python.md")


# --- reading Markdown -------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    doc: str
    lang: str
    body: str
    line: int  # line of the opening fence
    start: int  # offset of the opening fence
    end: int  # offset just after the closing fence

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def read(doc: str) -> str:
    return (DOCS / doc).read_text(encoding="utf-8")


def docs() -> list[str]:
    return sorted(p.name for p in DOCS.glob("*.md"))


def blocks(doc: str) -> list[Block]:
    """The fenced code blocks of a doc."""
    text = read(doc)
    out = []
    offset = 0
    opened: tuple[str, int, int] | None = None
    body: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.startswith("```"):
            if opened is None:
                opened = (line[3:].strip(), number, offset)
                body = []
            else:
                lang, first, start = opened
                out.append(Block(doc, lang, "".join(body), first, start, offset + len(line)))
                opened = None
        elif opened is not None:
            body.append(line)
        offset += len(line)
    assert opened is None, f"{doc}:{opened[1]}: unclosed code fence"
    return out


def headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of the Markdown headings outside code fences."""
    out = []
    offset = 0
    fenced = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) (.*)", line)):
            out.append((offset, len(match.group(1)), match.group(2).strip()))
        offset += len(line)
    return out


def section_span(text: str, title: Callable[[str], bool], level: int) -> tuple[int, int]:
    """Where the first heading of ``level`` whose title passes ``title`` starts, and where the
    next heading of the same or a higher level starts."""
    outline = headings(text)
    for index, (start, depth, name) in enumerate(outline):
        if depth == level and title(name):
            stop = next((o for o, d, _ in outline[index + 1 :] if d <= level), len(text))
            return start, stop
    raise AssertionError(f"no level-{level} heading found")


def section(text: str, title: Callable[[str], bool], level: int) -> str:
    start, stop = section_span(text, title, level)
    return text[start:stop]


def backticked(name: str, text: str) -> bool:
    return f"`{name}`" in text


# --- the spec models --------------------------------------------------------------------------


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if (
        typing.get_origin(annotation) is None
        and isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
    ):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def spec_models() -> dict[str, type[BaseModel]]:
    """Every pydantic model reachable from Spec through its fields, by class name."""
    found: dict[str, type[BaseModel]] = {}
    queue: list[type[BaseModel]] = [Spec]
    while queue:
        model = queue.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            queue.extend(_models_in(field.annotation))
    return found


def field_names(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields under the names a spec uses (the alias when set)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


MODELS = spec_models()
MARKER = re.compile(r"<!-- fields: ([\w ]+) -->")


def model_sections() -> dict[str, str]:
    """Model name -> the part of spec.md after its ``<!-- fields: ... -->`` marker, up to the
    next marker or heading."""
    text = read("spec.md")
    starts = sorted([o for o, _, _ in headings(text)] + [m.start() for m in MARKER.finditer(text)])
    out: dict[str, str] = {}
    for match in MARKER.finditer(text):
        stop = next((s for s in starts if s > match.start()), len(text))
        for name in match.group(1).split():
            assert name not in out, f"two sections for {name} in spec.md"
            out[name] = text[match.end() : stop]
    return out


def test_the_model_walk_finds_every_kind_of_model():
    expected = {
        "Spec",
        "Columns",
        "LabelColumns",
        "OutcomeColumns",
        "AvailabilitySLO",
        "LatencySLO",
        "FreshnessSLO",
        "AccuracySLO",
        "FairnessSLO",
        "Objective",
        "Window",
        "BurnAlert",
        "AvailabilitySLI",
        "LatencySLI",
        "FreshnessSLI",
        "AccuracySLI",
        "FairnessSLI",
        "Correction",
        "Policy",
        "RiskScore",
        "Notifier",
    }
    assert expected <= set(MODELS)
    assert "for" in field_names(MODELS["BurnAlert"])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_spec_field_is_in_spec_md(model):
    text = read("spec.md")
    missing = [name for name in field_names(MODELS[model]) if not backticked(name, text)]
    assert not missing, f"docs/spec.md does not mention {missing} of {model}"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_spec_model_has_its_section(model):
    sections = model_sections()
    assert model in sections, f"docs/spec.md has no <!-- fields: {model} --> section"
    missing = [name for name in field_names(MODELS[model]) if not backticked(name, sections[model])]
    assert not missing, f"the {model} section of docs/spec.md does not document {missing}"


def test_spec_md_has_no_section_for_a_model_that_is_gone():
    assert set(model_sections()) <= set(MODELS)


def _rendered_default(info: FieldInfo) -> str | None:
    value = info.get_default(call_default_factory=True)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _table_rows(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """(header, cells) of every row of every Markdown table in ``text``."""
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            yield header, cells


@pytest.mark.parametrize("model", sorted(MODELS))
def test_documented_defaults_are_the_real_ones(model):
    """A default written as `code`, `none…` or `required…` in spec.md is the model's."""
    fields = field_names(MODELS[model])
    for header, cells in _table_rows(model_sections().get(model, "")):
        column = next((i for i, h in enumerate(header) if h.startswith("default")), None)
        name = re.fullmatch(r"`([\w.]+)`", cells[0])
        if column is None or name is None or name.group(1) not in fields:
            continue
        info = fields[name.group(1)]
        cell = cells[column]
        where = f"{model}.{name.group(1)}: docs/spec.md says {cell!r}"
        if cell.startswith("required"):
            assert info.is_required(), where
        elif cell.startswith("none"):
            assert not info.is_required() and _rendered_default(info) is None, where
        elif literal := re.match(r"`([^`]*)`", cell):
            assert not info.is_required(), where
            assert _rendered_default(info) == literal.group(1), where


# --- the CLI ----------------------------------------------------------------------------------


def cli_group() -> Any:
    """The click group behind the typer app (typer may bring its own copy of click, so the
    objects are used by their attributes, not checked by class)."""
    return typer.main.get_command(app)


def choices(param: Any) -> list[str]:
    """The allowed values of an option, when it has a fixed set."""
    kind = getattr(param, "type", None)
    if kind is not None and hasattr(kind, "choices"):
        return [str(c) for c in kind.choices]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return []


def cli_commands() -> dict[str, Any]:
    """Every command by its full name ("evaluate"; "gate override" for a sub-command)."""
    out: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in getattr(group, "commands", {}).items():
            out[f"{prefix}{name}"] = command
            walk(command, f"{prefix}{name} ")

    walk(cli_group(), "")
    return out


COMMANDS = sorted(cli_commands())
COMMAND_HEADING = re.compile(r"`mlslo ([\w -]+)`")


def command_section(name: str) -> str:
    text = read("cli.md")
    for level in (2, 3):
        try:
            return section(text, lambda title: title == f"`mlslo {name}`", level)
        except AssertionError:
            continue
    raise AssertionError(f"docs/cli.md has no section `mlslo {name}`")


def test_there_are_commands_to_document():
    assert {"validate", "evaluate"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_and_option_is_in_cli_md(name):
    text = command_section(name)
    for param in cli_commands()[name].params:
        if param.param_type_name == "option":
            for opt in [*param.opts, *param.secondary_opts]:
                assert backticked(opt, text), f"docs/cli.md: `mlslo {name}` lacks {opt}"
            for choice in choices(param):
                assert backticked(choice, text), f"docs/cli.md: {name} {param.opts[0]} {choice}"
        else:
            assert param.name is not None
            assert param.name.upper() in text, f"docs/cli.md: `mlslo {name}` lacks {param.name}"


def test_the_command_table_lists_every_command():
    """The table at the top of docs/cli.md, which a reader scans first, has every command
    (top-level ones and those of a group, such as ``gate override``)."""
    text = read("cli.md")
    table = text[text.index("| command | what it does |") :].split("\n\n", 1)[0]
    listed = set(re.findall(r"\[`mlslo ([a-z ]+)`\]\(#mlslo-[a-z-]+\)", table))
    top_level = {name.split()[0] for name in COMMANDS}
    assert top_level <= listed, sorted(top_level - listed)
    assert {name for name in COMMANDS if " " in name and name.split()[0] == "gate"} <= listed


def test_cli_md_documents_only_real_commands():
    titles = [t for _, level, t in headings(read("cli.md")) if level in (2, 3)]
    documented = {m.group(1) for t in titles if (m := COMMAND_HEADING.fullmatch(t))}
    assert documented == set(COMMANDS)


def test_global_options_are_in_cli_md():
    text = read("cli.md")
    for param in cli_group().params:
        for opt in param.opts:
            assert backticked(opt, text), f"docs/cli.md lacks the global option {opt}"
    assert backticked("--help", text)


# --- YAML specs -------------------------------------------------------------------------------

YAML_BLOCKS = [b for doc in docs() for b in blocks(doc) if b.lang == "yaml"]
SPEC_BLOCKS = [b for b in YAML_BLOCKS if b.body.lstrip().startswith("service:")]


def test_the_docs_have_spec_examples():
    assert len(SPEC_BLOCKS) >= 15


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: b.where)
def test_yaml_blocks_are_yaml(block):
    yaml.safe_load(block.body)


@pytest.mark.parametrize("block", SPEC_BLOCKS, ids=lambda b: b.where)
def test_spec_blocks_validate(block):
    parse_spec(block.body, file=block.where)


# --- running the examples ---------------------------------------------------------------------


def files_in_docs() -> dict[str, str]:
    """YAML blocks whose first line is a file name comment (``# typo.yaml``), by name."""
    out: dict[str, str] = {}
    for block in YAML_BLOCKS:
        match = re.fullmatch(r"# ([\w.-]+\.ya?ml)", block.body.splitlines()[0])
        if match:
            name = match.group(1)
            assert out.get(name, block.body) == block.body, f"two different {name} in docs"
            out[name] = block.body
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding examples/ and the files the docs define inline."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    for name, body in files_in_docs().items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


@dataclass(frozen=True)
class Example:
    block: Block
    command: list[str]
    shown: list[str]  # the output printed under the command
    exit_code: int  # from a following ``$ echo $?``, else 2 for ``error:`` output, else 0
    excerpt: Any  # a JSON block right after the console block: part of the output


def _commands(block: Block) -> Iterator[tuple[list[str], list[str], int]]:
    lines = block.body.splitlines()
    parsed: list[tuple[list[str], list[str]]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        assert line.startswith("$ "), f"{block.where}: expected '$ command', found {line!r}"
        command = line[2:]
        while command.endswith("\\"):
            index += 1
            command = command[:-1] + lines[index]
        index += 1
        shown = []
        while index < len(lines) and not lines[index].startswith("$ "):
            shown.append(lines[index])
            index += 1
        parsed.append((shlex.split(command), shown))
    for position, (command, shown) in enumerate(parsed):
        if command == ["echo", "$?"]:
            continue
        after = parsed[position + 1] if position + 1 < len(parsed) else None
        if after is not None and after[0] == ["echo", "$?"]:
            code = int(after[1][0])
        else:
            code = 2 if shown and shown[0].startswith("error:") else 0
        yield command, shown, code


def examples(doc: str) -> list[Example]:
    found = blocks(doc)
    text = read(doc)
    out = []
    for position, block in enumerate(found):
        if block.lang != "console":
            continue
        following = found[position + 1] if position + 1 < len(found) else None
        excerpt = None
        if (
            following is not None
            and following.lang == "json"
            and not text[block.end : following.start].strip()
        ):
            excerpt = json.loads(following.body)
        for command, shown, code in _commands(block):
            assert command[0] == "mlslo", f"{block.where}: only mlslo commands are run"
            out.append(Example(block, command, shown, code, excerpt))
    return out


EXAMPLES_RUN = [e for doc in RUNNABLE for e in examples(doc)]


def run(cli, example: Example) -> Any:
    """Run an example and check its output; return the parsed JSON output, if any."""
    result = cli(*example.command[1:])
    assert result.exit_code == example.exit_code, f"{example.block.where}: {result.stderr}"
    shown = [line.rstrip() for line in example.shown]
    printed = result.stderr if shown and shown[0].startswith("error:") else result.stdout
    if shown:
        assert [line.rstrip() for line in printed.splitlines()] == shown, example.block.where
    if "json" in example.command:
        return result.json()
    return None


def assert_part_of(expected: Any, actual: Any, path: str = "$") -> None:
    """``expected`` (a JSON excerpt) is contained in ``actual``: every key it has, with the
    same value; lists element by element."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, found {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is not in the output"
            assert_part_of(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r}"
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_part_of(e, a, f"{path}[{index}]")
    elif isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert actual == expected, f"{path}: the doc shows {expected!r}, the CLI prints {actual!r}"
    else:
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), (
            f"{path}: the doc shows {expected!r}, the CLI prints {actual!r}"
        )


def test_the_docs_have_examples_to_run():
    assert len(EXAMPLES_RUN) >= 10
    assert sum(e.excerpt is not None for e in EXAMPLES_RUN) >= 6


@pytest.mark.parametrize("example", EXAMPLES_RUN, ids=lambda e: f"{e.block.where}:{e.command[1]}")
def test_cli_examples_print_what_the_docs_show(example, cli, workdir):
    output = run(cli, example)
    if example.excerpt is not None:
        assert output is not None, f"{example.block.where}: a JSON excerpt needs --format json"
        assert_part_of(example.excerpt, output)


# --- the worked examples of concepts.md -------------------------------------------------------


def _at(*path: Any) -> Callable[[Any], Any]:
    def get(output: Any) -> Any:
        for part in path:
            output = output[part]
        return output

    return get


def _group_rate(slo: int, group: str) -> Callable[[Any], float]:
    def get(output: Any) -> float:
        for entry in output["slos"][slo]["sli"]["groups"]:
            if entry["group"]["group"] == group:
                return float(entry["rates"]["true_positive_rate"]["value"])
        raise KeyError(group)

    return get


# Example title -> (what the prose states, from the JSON output; how the prose writes it).
STATED: dict[str, list[tuple[Callable[[Any], Any], str]]] = {
    "Accuracy": [
        (_at("slos", 0, "sli", "value"), "10 / 12 = {:.4f}`"),
        (_at("slos", 0, "sli", "n"), "`n = {}`"),
        (_at("slos", 0, "budget", "consumed"), "consumed = 0.1667 / 0.08 = {:.3f}"),
        (_at("slos", 0, "budget", "remaining"), "remaining = {:.3f}"),
        (_at("slos", 0, "burn_rates", "5m"), "burn rate is `(1 − 0.8571) / 0.08 = {:.3f}`"),
        (_at("slos", 0, "burn_rates", "1h"), "burns at {:.3f}"),
        (_at("slos", 0, "budget", "status"), "Status `{}`"),
    ],
    "Freshness": [
        (_at("slos", 0, "sli", "value"), "`3 / 5 = {:.2f}`"),
        (_at("slos", 0, "budget", "consumed"), "`consumed = 2 / 0.25 = {:.1f}`"),
        (_at("slos", 0, "budget", "remaining"), "`remaining = {:.1f}`"),
        (_at("slos", 0, "burn_rates", "1h"), "`(2/5) / 0.05 = {:.1f}`"),
        (_at("slos", 1, "sli", "value"), "{:.2f} s"),
        (lambda out: out["slos"][1]["sli"]["value"] / 60, "= {:.1f} min"),
        (_at("slos", 1, "budget", "consumed"), "= {:.3f}`"),
        (_at("slos", 1, "budget", "remaining"), "`remaining = {:.3f}`"),
    ],
    "Uptime": [
        (_at("slos", 0, "sli", "value"), "= {:.5f}`: met"),
        (_at("slos", 0, "budget", "consumed"), "`consumed = 320 / 500 = {:.2f}`"),
        (_at("slos", 0, "budget", "remaining"), "`remaining = {:.2f}`"),
        (_at("slos", 0, "budget", "status"), "`{}`"),
        (_at("slos", 0, "burn_rates", "1h"), "| 30 / 3,000 | {:.1f} |"),
        (_at("slos", 0, "burn_rates", "2h"), "| 44 / 6,000 | {:.2f} |"),
        (_at("slos", 0, "burn_rates", "6h"), "| 52 / 18,000 | {:.2f} |"),
        (_at("slos", 0, "burn_rates", "1d"), "| 88 / 72,000 | {:.2f} |"),
        (_at("slos", 0, "burn_rates", "3d"), "| 104 / 136,000 | {:.2f} |"),
        (_at("slos", 0, "time_to_exhaustion_hours"), "= {:.2f} h"),
        (_at("slos", 0, "time_to_exhaustion", "1d"), "= {:.0f} h"),
    ],
    "Fairness": [
        (_group_rate(0, "A"), "A `91 / 100 = {:.2f}`"),
        (_group_rate(0, "B"), "B `86 / 100 = {:.2f}`"),
        (_at("slos", 0, "sli", "value"), "0.91 − 0.86 = {:.2f}`"),
        (_at("slos", 0, "sli", "n"), "`n = {}`"),
        (_at("slos", 0, "budget", "consumed"), "`consumed = 0.05 / 0.05 = {:g}`"),
        (_at("slos", 0, "budget", "remaining"), "`remaining = {:g}`"),
        (_at("slos", 0, "budget", "status"), "status `{}`"),
        (
            lambda out: out["slos"][0]["sli"]["ci"],
            "interval for the gap is [{0[0]:.2f}, {0[1]:.2f}]",
        ),
    ],
    "Gate": [
        (_at("decision"), "Decision: {}, with all five reasons"),
        (_at("slos", 0, "sli", "value"), "`F1 = 354 / 381 = {:.4f}`"),
        (_at("slos", 0, "budget", "consumed"), "`consumed = (1 − 0.9291) / 0.08 = {:.3f}`"),
        (_at("slos", 0, "budget", "remaining"), "`remaining = {:.3f}`"),
        (_at("risk_score"), "0.4 × 0.64) / 0.9 = {:.3f}`"),
    ],
    "Composite": [
        (_at("composites", 0, "budget", "consumed"), "0.25 × 0.64 + 0.25 × 1 = {:.3f}`"),
        (_at("composites", 0, "budget", "remaining"), "`remaining = {:.3f}`"),
        (_at("composites", 0, "budget", "status"), "the status is `{}`"),
        (_at("composites", 0, "sli", "value"), "1 − 0.1 × 0.853 = {:.4f}`"),
        (_at("composites", 0, "burn_rates", "1h"), "`burn_rate(1h) = 0.25 × 20 = {:.1f}`"),
        (_at("composites", 0, "time_to_exhaustion_hours"), "/ 5.0 = {:.1f} h`"),
        (_at("slos", 1, "burn_rates", "1h"), "uptime burns {:.0f}×"),
    ],
    "Delayed labels": [
        (_at("slos", 0, "sli", "label_coverage"), "`label_coverage = 10 / 14 = {:.3f}`"),
        (_at("slos", 0, "sli", "estimated", "value"), "`3 / (3 + 0.5 + 0.3) = {:.4f}`"),
        (_at("slos", 0, "sli", "value"), "= {:.4f} (as in the"),
        (_at("slos", 1, "sli", "label_coverage"), "coverage {:.1f}"),
    ],
}


@pytest.mark.parametrize("title", sorted(STATED))
def test_worked_examples_state_what_the_cli_computes(title, cli, workdir):
    concepts = read("concepts.md")
    start, stop = section_span(concepts, lambda name: name.startswith(title), 3)
    text = concepts[start:stop]
    json_runs = [
        e for e in examples("concepts.md") if start <= e.block.start < stop and "json" in e.command
    ]
    assert json_runs, f"the {title} example has no --format json command"
    output = run(cli, json_runs[0])
    for value, written in STATED[title]:
        expected = written.format(value(output))
        assert expected in text, f"concepts.md, {title}: expected {expected!r} in the prose"


def test_worked_examples_cover_design_reference_examples():
    titles = [t for _, level, t in headings(read("concepts.md")) if level == 3]
    for title in ("Accuracy", "Freshness", "Uptime", "Fairness"):
        assert any(t.startswith(title) for t in titles), title


# --- examples/reference -----------------------------------------------------------------------


def data_snippets() -> list[Block]:
    return [
        b for b in blocks("concepts.md") if b.lang == "python" and "examples/reference" in b.body
    ]


@pytest.mark.parametrize("snippet", data_snippets(), ids=lambda b: b.where)
def test_snippets_write_the_reference_data(snippet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet.body, snippet.where, "exec"), {"__name__": "docs_snippet"})
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert written, f"{snippet.where} wrote nothing"
    for path in written:
        relative = path.relative_to(tmp_path)
        committed = ROOT / relative
        assert committed.is_file(), f"{snippet.where} writes {relative}, which is not committed"
        assert path.read_bytes() == committed.read_bytes(), f"{relative} differs from the snippet"


def test_every_reference_file_comes_from_the_docs():
    written = set()
    for snippet in data_snippets():
        written |= set(re.findall(r'"([\w.-]+\.csv)"', snippet.body))
    homes = ("concepts.md", "gate.md")
    specs = {b.body: doc for doc in homes for b in blocks(doc) if b.lang == "yaml"}
    for path in sorted((EXAMPLES / "reference").rglob("*")):
        if not path.is_file():
            continue
        where = path.relative_to(ROOT)
        if path.suffix == ".yaml":
            doc = specs.get(path.read_text(encoding="utf-8"))
            assert doc is not None, f"{where} is in none of {', '.join(homes)}"
            assert f"`{where}`" in read(doc), f"{doc} does not name {where}"
        else:
            assert path.name in written, f"no snippet in concepts.md writes {where}"


# --- the Python API ---------------------------------------------------------------------------

PYTHON_EXAMPLES = [b for b in blocks("python.md") if b.lang == "pycon"]


def test_python_md_has_examples_to_run():
    assert len(PYTHON_EXAMPLES) >= 5
    assert all(b.body.startswith(">>> ") for b in PYTHON_EXAMPLES)


def test_python_examples_print_what_the_docs_show(workdir):
    """The ``pycon`` blocks of python.md in order, sharing their names, as doctests run from
    a folder holding examples/."""
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    names: dict[str, Any] = {"__name__": "docs_python"}
    report: list[str] = []
    for block in PYTHON_EXAMPLES:
        test = parser.get_doctest(block.body, names, block.where, "docs/python.md", block.line)
        runner.run(test, out=report.append, clear_globs=False)
        names = test.globs
    summary = runner.summarize(verbose=False)
    assert summary.attempted >= 15
    assert summary.failed == 0, "".join(report)


# --- burn windows -----------------------------------------------------------------------------


def test_burn_window_table_matches_the_scaling():
    text = read("concepts.md")
    table = text[text.index("<!-- burn-windows -->") :]
    rows = 0
    bucket = Spec.model_fields["bucket"].default
    assert bucket == timedelta(minutes=1), "the table is for the default 1-minute bucket"
    for _, cells in _table_rows(table.split("\n\n")[0]):
        windows = re.findall(r"`([^`]+)`", cells[0])
        shown = [w.strip() for w in cells[1].split(",")]
        for window in windows:
            scaled = [
                format_duration(w)
                for w in standard_burn_windows(Window.model_validate(window), bucket)
            ]
            assert scaled == shown, f"burn windows of {window}: {scaled}"
        rows += 1
    assert rows >= 4


# --- links ------------------------------------------------------------------------------------


def anchors(doc: str) -> set[str]:
    """The anchors GitHub gives the headings of a doc."""
    out: set[str] = set()
    for _, _, title in headings(read(doc)):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        candidate, number = slug, 0
        while candidate in out:
            number += 1
            candidate = f"{slug}-{number}"
        out.add(candidate)
    return out


@pytest.mark.parametrize("doc", RUNNABLE)
def test_links_between_the_docs_resolve(doc):
    text = read(doc)
    for block in reversed(blocks(doc)):
        text = text[: block.start] + text[block.end :]
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (DOCS / path).resolve() if path else DOCS / doc
        assert linked.exists(), f"{doc}: link to missing {target}"
        if anchor:
            assert linked.suffix == ".md", f"{doc}: anchor into a non-Markdown file: {target}"
            assert anchor in anchors(linked.name), f"{doc}: no heading for {target}"


def _fenced_after(text: str, marker: str) -> str:
    after = text.split(marker, 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1].strip()


def test_ci_runs_the_readme_test_command_verbatim():
    """.ci/run ends with the README's test command: the Debian packages, a venv with the test
    extras, then pytest over the whole suite with missing system parts failing; make test
    runs the same command."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = _fenced_after(readme, "<!-- test-command -->")
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()]
    assert command.count("\n") == 0
    assert ci[-1] == command
    steps = command.split(" && ")
    assert steps == [
        "./scripts/system-packages",
        "python3 -m venv .venv",
        ". .venv/bin/activate",
        "pip install -e '.[test,spark]'",
        "MLSLO_REQUIRE_SYSTEM=1 python -m pytest",
    ]
    packages = ROOT / "scripts/system-packages"
    assert packages.stat().st_mode & 0o111, "scripts/system-packages must be executable"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"test:\n\t{command}\n" in makefile


def test_readme_demo_command_installs_then_runs_mlslo_demo():
    """The README's first command is an install followed by exactly ``mlslo demo``, the
    command tests/test_demo.py runs (with options to keep it small)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = _fenced_after(readme, "<!-- demo-command -->")
    steps = command.split(" && ")
    assert steps == [
        "python3 -m venv .venv",
        ". .venv/bin/activate",
        "pip install .",
        "mlslo demo",
    ]
    demo_test = (ROOT / "tests/test_demo.py").read_text(encoding="utf-8")
    assert '_mlslo(),\n                "demo",' in demo_test


@pytest.mark.parametrize("required", [False, True], ids=["developer", "readme-test-command"])
def test_missing_system_parts_are_one_line(tmp_path, required):
    """Without Prometheus on PATH, a plain pytest run says so in one line and skips the tests
    that start it; under the README's test command (MLSLO_REQUIRE_SYSTEM=1) the same tests
    fail, each with that one line and no traceback."""
    import os
    import subprocess
    import sys

    bare = tmp_path / "bin"
    bare.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLSLO_REQUIRE_SYSTEM"}
    env["PATH"] = str(bare)
    if required:
        env["MLSLO_REQUIRE_SYSTEM"] = "1"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            "tests/test_integration_prometheus.py",
            "-k",
            "promtool_accepts",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    hint = "missing prometheus, prometheus-alertmanager, promtool"
    assert output.count(hint) >= 1, output
    assert "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager" in output
    assert "Traceback" not in output
    if required:
        assert run.returncode == 1, output
        assert "1 error" in output
    else:
        assert run.returncode == 0, output
        assert "1 skipped" in output
