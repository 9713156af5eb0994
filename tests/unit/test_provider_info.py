"""The provider metadata as Airflow's tools read it: valid against Airflow's own schemas, complete (every hook,
operator, sensor and trigger module of the package), shown by ``airflow providers ...``, and saying what the
hooks read, with the same defaults in the code, the connection forms and the docs."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_qconn.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
INFO = get_provider_info()
FORMS = {conn["connection-type"]: conn for conn in INFO["connection-types"]}
#: The python-modules sections, each with the base class its modules must define a subclass of.
SECTIONS = {
    "hooks": "airflow.sdk.BaseHook",
    "operators": "airflow.sdk.BaseOperator",
    "sensors": "airflow.sdk.BaseSensorOperator",
    "triggers": "airflow.triggers.base.BaseTrigger",
}


def _airflow_schema(name: str) -> dict:
    return json.loads((resources.files("airflow") / name).read_text())


def _class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_metadata_is_valid_against_the_schema_airflow_checks_at_run_time():
    jsonschema.Draft7Validator(_airflow_schema("provider_info.schema.json")).validate(INFO)


def test_the_metadata_is_valid_against_the_strict_schema_of_airflows_own_providers():
    # provider.yaml.schema.json is what Airflow holds its own providers' provider.yaml to (closed objects, tag
    # and format enums, conn-fields). Only source-date-epoch is left out: it dates a documentation release.
    schema = _airflow_schema("provider.yaml.schema.json")
    schema["required"] = [key for key in schema["required"] if key != "source-date-epoch"]
    jsonschema.Draft7Validator(schema).validate(INFO)


def test_every_integration_has_an_external_doc_url_and_every_section_names_one_of_them():
    integrations = {item["integration-name"]: item for item in INFO["integrations"]}
    assert set(integrations) == {"Outlook (Microsoft Graph)", "WhatsApp (Twilio)"}
    assert all(item["external-doc-url"].startswith("https://") for item in integrations.values())
    assert {conn["hook-name"] for conn in INFO["connection-types"]} == set(integrations)
    for section in SECTIONS:
        assert {entry["integration-name"] for entry in INFO[section]} <= set(integrations), section


def _public_subclasses(module_name: str, base: type) -> set[type]:
    """The public subclasses of ``base`` a module offers, its own or re-exported from its own submodules."""
    return {
        obj
        for obj in vars(importlib.import_module(module_name)).values()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and not obj.__name__.startswith("_")
        and (obj.__module__ == module_name or obj.__module__.startswith(f"{module_name}."))
    }


@pytest.mark.parametrize("section", SECTIONS)
def test_each_section_lists_modules_that_offer_every_such_class_of_the_package(section):
    base = _class(SECTIONS[section])
    package = importlib.import_module(f"airflow_provider_qconn.{section}")
    in_package = set().union(
        *(
            _public_subclasses(info.name, base)
            for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
        )
    )
    listed = [module for entry in INFO[section] for module in entry["python-modules"]]
    offered = [_public_subclasses(module, base) for module in listed]
    assert all(offered), "a listed module offers nothing"
    assert set().union(*offered) == in_package


def test_every_class_named_in_the_metadata_imports_and_is_what_its_section_says():
    from airflow.sdk import BaseHook, BaseNotifier, BaseOperatorLink

    for conn in INFO["connection-types"]:
        hook = _class(conn["hook-class-name"])
        assert issubclass(hook, BaseHook) and hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]
    assert all(issubclass(_class(path), BaseNotifier) for path in INFO["notifications"])
    assert all(issubclass(_class(path), BaseOperatorLink) for path in INFO["extra-links"])
    assert all(callable(_class(path)) for path in INFO["cli"])


# --- airflow providers ... -----------------------------------------------------------------------------------------

#: Runs `airflow providers <command> --output json` for each command through Airflow's own entry point, in one
#: interpreter (each `airflow` start-up costs seconds), one JSON document per line.
_RUN_CLI = textwrap.dedent(
    """
    import sys
    from airflow.__main__ import main

    for command in sys.argv[1:]:
        sys.argv = ["airflow", "providers", command, "--output", "json"]
        main()
        print(flush=True)
    """
)
CLI_COMMANDS = ("list", "hooks", "widgets", "links", "notifications", "triggers")


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> dict[str, list[dict]]:
    home = tmp_path_factory.mktemp("airflow-home")
    result = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, *CLI_COMMANDS],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    documents = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(documents) == len(CLI_COMMANDS), result.stdout[-3000:]
    return dict(zip(CLI_COMMANDS, documents, strict=True))


def _ours(rows: list[dict]) -> list[dict]:
    return [row for row in rows if "qconn" in json.dumps(row)]


def test_airflow_providers_list_shows_the_provider(cli):
    [row] = _ours(cli["list"])
    assert row["package_name"] == "airflow-provider-qconn" and row["version"] == INFO["versions"][0]


def test_airflow_providers_hooks_shows_both_connection_types(cli):
    rows = {row["connection_type"]: row for row in _ours(cli["hooks"])}
    assert {name: (row["class"], row["hook_name"]) for name, row in rows.items()} == {
        conn["connection-type"]: (conn["hook-class-name"], conn["hook-name"]) for conn in INFO["connection-types"]
    }
    assert rows["qconn_msgraph"]["conn_id_attribute_name"] == "msgraph_conn_id"
    assert rows["qconn_twilio"]["conn_id_attribute_name"] == "twilio_conn_id"


def test_airflow_providers_widgets_shows_every_form_field(cli):
    shown = {row["connection_parameter_name"]: row["field_type"] for row in _ours(cli["widgets"])}
    declared = {
        f"extra__{conn_type}__{name}": field["schema"]["type"]
        for conn_type, conn in FORMS.items()
        for name, field in conn["conn-fields"].items()
    }
    assert shown == declared


def test_airflow_providers_links_notifications_and_triggers_show_ours(cli):
    assert [row["extra_link_class_name"] for row in _ours(cli["links"])] == INFO["extra-links"]
    assert [row["notification_class_name"] for row in _ours(cli["notifications"])] == INFO["notifications"]
    assert [(row["class"], row["integration_name"]) for row in _ours(cli["triggers"])] == [
        ("airflow_provider_qconn.triggers.whatsapp", "WhatsApp (Twilio)")
    ]


# --- what the hooks read, declared with the same defaults in code, form and docs ---------------------------------


def _extra_keys_read(function: object) -> set[str]:
    """The extra keys a function reads: ``extra.get("k")``, ``extra["k"]`` and ``helper(extra, "k", ...)``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "extra":
            keys.add(node.slice)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "extra":
                keys.update(node.args[:1])
            for first, second in zip(node.args, node.args[1:], strict=False):
                if isinstance(first, ast.Name) and first.id == "extra":
                    keys.add(second)
    return {key.value for key in keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}


def _docs_rows(doc: str) -> dict[str, str]:
    """The connection table's extra rows of a doc: field name -> the row's text."""
    rows = {}
    for line in (ROOT / "docs" / doc).read_text().splitlines():
        match = re.match(r"\| extra ((?:`\w+`(?: / )?)+) \|(.*)\|$", line)
        if match:
            rows.update(dict.fromkeys(re.findall(r"`(\w+)`", match.group(1)), match.group(2)))
    return rows


def _twilio_defaults() -> dict[str, object]:
    from airflow_provider_qconn.hooks.twilio import TwilioHook

    config = TwilioHook()._parse_config("AC" + "0" * 32, "token", {})
    return {name: getattr(config, name) for name in FORMS["qconn_twilio"]["conn-fields"]}


def _msgraph_defaults() -> dict[str, object]:
    from airflow.sdk import Connection

    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

    # The least a connection can hold: a client id and a refresh token. auth_type is then inferred from the
    # credential, not defaulted (its inference is checked against the AUTH_MODES table below).
    conn = Connection(
        conn_id="minimal", conn_type="qconn_msgraph", login="app", extra=json.dumps({"refresh_token": "token"})
    )
    settings = GraphSettings.from_connection(conn)
    given = {"refresh_token", "auth_type"}
    return {name: getattr(settings, name) for name in FORMS["qconn_msgraph"]["conn-fields"] if name not in given}


@pytest.mark.parametrize(
    ("conn_type", "reader", "doc"),
    [
        ("qconn_msgraph", "airflow_provider_qconn.hooks.msgraph.settings.GraphSettings.from_connection", "outlook.md"),
        ("qconn_twilio", "airflow_provider_qconn.hooks.twilio.TwilioHook._parse_config", "whatsapp.md"),
    ],
)
def test_every_extra_a_hook_reads_is_on_its_form_and_in_its_docs_and_nothing_else(conn_type, reader, doc):
    module, _, attribute = reader.rpartition(".")
    read = _extra_keys_read(getattr(_class(module), attribute))
    assert read == set(FORMS[conn_type]["conn-fields"])
    assert set(_docs_rows(doc)) == read


@pytest.mark.parametrize(
    ("conn_type", "defaults", "doc"),
    [("qconn_msgraph", _msgraph_defaults, "outlook.md"), ("qconn_twilio", _twilio_defaults, "whatsapp.md")],
)
def test_each_default_is_the_same_in_the_hook_the_form_and_the_docs(conn_type, defaults, doc):
    fields = FORMS[conn_type]["conn-fields"]
    rows = _docs_rows(doc)
    defaulted = {name: str(value) for name, value in defaults().items() if value is not None}
    assert defaulted, "the hook defaults nothing?"
    for name, value in defaulted.items():
        for text in (fields[name]["description"], rows[name]):
            assert "default" in text.lower(), (name, text)
            assert re.search(rf"(?<![\w/.]){re.escape(value)}(?![\w/]|\.\w)", text), (name, value, text)
        # A field that suggests values suggests the default first.
        assert fields[name]["schema"].get("examples", [value])[0] == value, name


@pytest.mark.parametrize("conn_type", FORMS)
def test_placeholders_name_only_standard_fields_the_only_ones_airflow_3_shows_them_on(conn_type):
    placeholders = FORMS[conn_type]["ui-field-behaviour"]["placeholders"]
    assert set(placeholders) <= {"description", "host", "port", "login", "password", "schema"}


def test_the_suggested_graph_hosts_and_authorities_are_microsoft_clouds_the_hook_recognises():
    from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

    from airflow_provider_qconn.hooks.msgraph.settings import GRAPH_CLOUD_HOSTS

    fields = FORMS["qconn_msgraph"]["conn-fields"]
    graph_hosts = {url.split("/")[2] for url in fields["base_url"]["schema"]["examples"]}
    authority_hosts = {url.split("/")[2] for url in fields["authority"]["schema"]["examples"]}
    assert graph_hosts == GRAPH_CLOUD_HOSTS
    assert authority_hosts <= WELL_KNOWN_AUTHORITY_HOSTS


def test_the_auth_type_choices_are_the_auth_modes_table_in_its_order_on_the_form_and_in_the_docs():
    from airflow_provider_qconn.hooks.msgraph.credentials import AUTH_MODES

    field = FORMS["qconn_msgraph"]["conn-fields"]["auth_type"]
    assert field["schema"]["enum"] == [None, *AUTH_MODES]
    # The dropdown's labels (Airflow shows a bare "null" for a choice without one).
    assert set(field["schema"]["values_display"]) == {"null", *AUTH_MODES}
    assert all(label.startswith(name) for name, label in field["schema"]["values_display"].items() if name != "null")
    docs_row = _docs_rows("outlook.md")["auth_type"]
    assert re.findall(r"`(\w+)`", docs_row.split(";")[0]) == list(AUTH_MODES)
    assert all(name in field["description"] for name in AUTH_MODES)
    # Every credential an auth mode needs is a form field, or the password (the client secret).
    needed = {name for mode in AUTH_MODES.values() for name in mode.credential_fields}
    assert needed - set(FORMS["qconn_msgraph"]["conn-fields"]) == {"client_secret"}


@pytest.mark.parametrize(
    ("credential", "mode"),
    [("refresh_token", "refresh_token"), ("certificate_path", "certificate"), ("password", "client_secret")],
)
def test_the_inferred_auth_type_is_what_the_form_and_the_docs_say(credential, mode):
    from airflow.sdk import Connection

    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

    extra = {"tenant_id": "contoso.example", "user_id": "megan@contoso.example"}
    conn = Connection(
        conn_id="inferred",
        conn_type="qconn_msgraph",
        login="app",
        password="secret" if credential == "password" else None,
        extra=json.dumps({**extra, credential: "value"} if credential != "password" else extra),
    )
    assert GraphSettings.from_connection(conn).auth_type == mode
    # "a refresh token means refresh_token, a certificate certificate, a password client_secret" (docs),
    # "a refresh token means delegated, a certificate means certificate, a password means client_secret" (form)
    word = {"refresh_token": "refresh token", "certificate_path": "certificate", "password": "password"}[credential]
    docs_row = _docs_rows("outlook.md")["auth_type"]
    form_text = FORMS["qconn_msgraph"]["conn-fields"]["auth_type"]["description"]
    assert re.search(rf"a {word}(?: means)? `{mode}`", docs_row), docs_row
    assert re.search(rf"a {word} means {'delegated' if mode == 'refresh_token' else mode}", form_text), form_text
