"""The documentation cannot drift from the code, and refers only to what is in the repository.

Every operator, sensor and notifier the package ships has a section in docs/*.md (a heading naming the class)
with a parameter table, ``| parameter | default | meaning |``, and a ``Templated:`` line. The table lists
exactly the parameters of the class's ``__init__`` (its own and its provider base classes'), each with the
signature's default; the ``Templated:`` line says which of them are template fields; the class docstring has a
``:param`` line for each.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseNotifier, BaseOperator, conf

import airflow_provider_qconn

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGES = ("operators", "sensors", "notifications")
CODE = re.compile(r"`([^`]+)`")


def documented_classes() -> list[type]:
    """Every public operator, sensor and notifier class defined in the package."""
    found: set[type] = set()
    for package in PACKAGES:
        module_path = Path(airflow_provider_qconn.__file__).parent / package
        for info in pkgutil.iter_modules([str(module_path)]):
            module = importlib.import_module(f"airflow_provider_qconn.{package}.{info.name}")
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and value.__module__ == module.__name__
                    and issubclass(value, (BaseOperator, BaseNotifier))
                    and not name.startswith("_")
                ):
                    found.add(value)
    return sorted(found, key=lambda cls: cls.__name__)


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters a DAG author passes: ``__init__`` of the class and of its bases in this package."""
    collected: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("airflow_provider_qconn.") and "__init__" in vars(klass):
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD:
                    collected[name] = parameter
    return collected


@dataclass
class Section:
    """A class's section of the docs: its parameter table (name -> default cell) and its Templated line."""

    path: Path
    defaults: dict[str, str]
    templated: str


def section_of(cls: type) -> Section:
    heading = re.compile(rf"^(#+) `?{cls.__name__}`?\s*$")
    for path in sorted(DOCS.glob("*.md")):
        lines = path.read_text().splitlines()
        for start, line in enumerate(lines):
            match = heading.match(line)
            if not match:
                continue
            level = len(match.group(1))
            end = next(
                (i for i in range(start + 1, len(lines)) if re.match(rf"^#{{1,{level}}} ", lines[i])), len(lines)
            )
            return parse_section(path, lines[start + 1 : end], cls.__name__)
    pytest.fail(f"no section of docs/*.md has the heading {cls.__name__}")


def parse_section(path: Path, lines: list[str], name: str) -> Section:
    headers = [i for i, line in enumerate(lines) if re.match(r"^\|\s*parameter\s*\|", line)]
    assert len(headers) == 1, f"{path.name}, {name}: expected one '| parameter | default | meaning |' table"
    assert [cell.strip() for cell in lines[headers[0]].strip("|").split("|")] == ["parameter", "default", "meaning"]
    defaults: dict[str, str] = {}
    for row in lines[headers[0] + 2 :]:
        if not row.startswith("|"):
            break
        names_cell, default_cell, _ = (cell.strip() for cell in row.strip().strip("|").split("|", 2))
        for parameter in CODE.findall(names_cell):
            assert parameter not in defaults, f"{path.name}, {name}: {parameter} is listed twice"
            defaults[parameter] = default_cell
    templated = [line for line in lines if line.startswith("Templated:")]
    assert len(templated) == 1, f"{path.name}, {name}: expected one line starting 'Templated:'"
    return Section(path, defaults, templated[0])


def default_matches(cell: str, parameter: inspect.Parameter) -> bool:
    """Whether a table's default cell says what the signature's default is.

    ``required``: no default. None: ``none``, ``unchanged`` (an update), or words without code that say what
    None stands for (``the data interval's start``). Otherwise the cell's code span is the default as a Python
    literal, a bare string (a connection id), or an ``[section] option`` of Airflow's configuration whose value
    is the default.
    """
    default = parameter.default
    spans = CODE.findall(cell)
    if default is inspect.Parameter.empty:
        return cell == "required"
    if default is None:
        return cell != "required" and not spans
    if len(spans) != 1:
        return False
    span = spans[0]
    setting = re.fullmatch(r"\[(\w+)\] (\w+)", span)
    if setting:
        return conf.getboolean(*setting.groups(), fallback=False) == default
    try:
        return ast.literal_eval(span) == default
    except (ValueError, SyntaxError):
        return span == default


def templated_names(line: str, all_parameters: set[str]) -> set[str]:
    """The parameters a ``Templated:`` line names: ``every parameter``, ``every parameter except `a`, `b```, or a
    list of code spans."""
    text = line.removeprefix("Templated:").strip()
    if text == "every parameter.":
        return set(all_parameters)
    if text.startswith("every parameter except "):
        return all_parameters - set(CODE.findall(text))
    return set(CODE.findall(text))


CLASSES = documented_classes()


def test_the_package_ships_the_documented_kinds_of_class():
    names = {cls.__name__ for cls in CLASSES}
    assert {"ScheduleMeetingOperator", "SendWhatsAppTemplateOperator", "WhatsAppDeliverySensor"} <= names
    assert "WhatsAppNotifier" in names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_the_parameter_table_lists_every_parameter_with_its_default(cls):
    signature = parameters(cls)
    section = section_of(cls)
    assert set(section.defaults) == set(signature), f"{section.path.name}, {cls.__name__}"
    wrong = {
        name: (section.defaults[name], signature[name].default)
        for name in signature
        if not default_matches(section.defaults[name], signature[name])
    }
    assert wrong == {}, f"{section.path.name}, {cls.__name__}: table default vs signature default"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_the_docs_say_which_parameters_are_templated(cls):
    names = set(parameters(cls))
    section = section_of(cls)
    assert templated_names(section.templated, names) == set(cls.template_fields), section.templated


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_the_docstring_describes_every_parameter(cls):
    described = re.findall(r"^\s*:param (\w+):", inspect.getdoc(cls) or "", re.MULTILINE)
    assert sorted(described) == sorted(parameters(cls))


def test_a_default_cell_is_checked_against_the_signature():
    def signature(**defaults: Any) -> dict[str, inspect.Parameter]:
        return {
            name: inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
            for name, value in defaults.items()
        }

    given = signature(a="UTC", b=False, c=None, d=("delivered", "read"), e="qconn_twilio_default", f=30)
    assert default_matches('`"UTC"`', given["a"]) and not default_matches('`"utc"`', given["a"])
    assert default_matches("`False`", given["b"]) and not default_matches("`True`", given["b"])
    assert default_matches("none", given["c"]) and default_matches("the data interval's start", given["c"])
    assert not default_matches("`None`", given["c"]) and not default_matches("required", given["c"])
    assert default_matches('`("delivered", "read")`', given["d"])
    assert default_matches("`qconn_twilio_default`", given["e"]) and not default_matches("`qconn`", given["e"])
    assert default_matches("`30` (seconds)", given["f"]) and not default_matches("required", given["f"])
    required = inspect.Parameter("g", inspect.Parameter.KEYWORD_ONLY)
    assert default_matches("required", required) and not default_matches("none", required)


# --- nothing outside the repository -------------------------------------------------------------------------

CHECKED = ("README.md", "docs", "tests", "airflow_provider_qconn", "example_dags", "scripts")
#: What points outside the repository: the design notes and shared folders that are not part of it, absolute
#: paths of a workspace, and the words for tracker tickets (``issued`` and ``issuer`` are fine).
OUTSIDE = re.compile(
    "|".join(
        (
            r"(?-i:\bDESIGN\.md|\bAPI\.md)",  # upper case: docs/design.md is ours
            r"\.\./shared\b",
            r"/work/",
            r"\bissues?\b",
            r"\bticket\b",
        )
    ),
    re.IGNORECASE,
)


def tracked_files() -> list[Path]:
    """The files git tracks in the checked places; outside a git checkout (an sdist), every file there."""
    listing = subprocess.run(["git", "ls-files", "-z", "--", *CHECKED], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode == 0:
        return [ROOT / name for name in listing.stdout.split("\0") if name]
    places = [ROOT / place for place in CHECKED]
    return [
        path
        for place in places
        for path in ([place] if place.is_file() else place.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]


def test_docs_code_and_tests_refer_only_to_what_is_in_the_repository():
    files = tracked_files()
    assert len(files) > 50
    found = []
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if path.name == Path(__file__).name and line.lstrip().startswith('r"'):
                continue  # the patterns themselves
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert found == []
