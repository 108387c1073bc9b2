"""infra/stack.yaml is validated as a whole: file and line, every problem at once."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sales_cdc.declaration import StackDeclaration, load_declaration
from sales_cdc.settings import SettingsError, load_settings
from sales_cdc.stack import REPO_ROOT, Stack


def _infra(tmp_path: Path, edit=None) -> Path:
    infra = tmp_path / "infra"
    shutil.copytree(REPO_ROOT / "infra", infra)
    if edit:
        path = infra / "stack.yaml"
        path.write_text(edit(path.read_text()))
    return infra


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_repository_declaration_is_valid_in_every_environment():
    for env in ("local", "aws"):
        declared = load_declaration(env, REPO_ROOT / "infra" / "stack.yaml")
        assert set(declared) == set(StackDeclaration.model_fields)
    assert (
        load_declaration("local", REPO_ROOT / "infra" / "stack.yaml")["stream"]["shard_count"] == 2
    )
    aws = load_declaration("aws", REPO_ROOT / "infra" / "stack.yaml")
    assert aws["table"]["point_in_time_recovery"] is True
    assert aws["analytics"]["partitions_start"] == "2025-01-01"  # plain text, as before


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    infra = _infra(tmp_path, lambda t: t.replace("  shard_count: 1\n", "  shard_count: [1\n"))
    path = infra / "stack.yaml"
    with pytest.raises(SettingsError) as raised:
        load_declaration("local", path)
    message = str(raised.value)
    assert f"{path}:" in message and "YAML syntax error" in message
    line = int(message.split(f"{path}:", 1)[1].split(":", 1)[0])
    assert abs(line - _line_of(path, "shard_count: [1")) <= 2


def test_every_missing_unknown_or_mistyped_key_is_named_at_once_with_its_line(tmp_path):
    def edit(text: str) -> str:
        text = text.replace("  raw_prefix: raw/orders_cdc/\n", "")
        text = text.replace("  shard_count: 1\n", '  shard_count: "two"\n')
        text = text.replace("  key: orderId\n", "  key: orderId\n  colour: blue\n")
        return text.replace("      generator_running: true", "      generator_running: maybe")

    path = _infra(tmp_path, edit) / "stack.yaml"
    with pytest.raises(SettingsError) as raised:
        load_declaration("aws", path)
    message = str(raised.value)
    assert str(path) in message and "nothing was created" in message
    assert f"{path}:{_line_of(path, 'lake:')}: lake.raw_prefix: missing" in message
    shards = _line_of(path, 'shard_count: "two"')
    assert f"{path}:{shards}: stream.shard_count" in message
    assert f"{path}:{_line_of(path, 'colour: blue')}: table.colour: unknown key" in message
    # A bad override in another environment is found too (here while loading aws).
    assert (
        f"{path}:{_line_of(path, 'generator_running: maybe')}: "
        "environments.local.schedules.generator_running"
    ) in message
    assert "4 problem(s)" in message


def test_an_unknown_environment_and_a_wrong_value_are_errors(tmp_path):
    def edit(text: str) -> str:
        text = text.replace("  billing_mode: PAY_PER_REQUEST", "  billing_mode: ON_DEMAND")
        return text + "  staging:\n    stream:\n      shard_count: 3\n"

    path = _infra(tmp_path, edit) / "stack.yaml"
    with pytest.raises(SettingsError) as raised:
        load_declaration("local", path)
    message = str(raised.value)
    assert "environments.staging: unknown environment" in message
    assert "table.billing_mode" in message and "'ON_DEMAND'" in message


def test_names_beyond_aws_limits_name_the_setting_to_shorten():
    # 32 characters (the longest prefix allowed) in a 14-character region: the bucket name
    # "{prefix}-lake-{account}-{region}" is 65 characters, S3 allows 63.
    settings = load_settings(
        {"SALES_CDC_ENV": "aws", "AWS_REGION": "ap-southeast-2", "SALES_CDC_PREFIX": "a" * 32}
    )
    with pytest.raises(SettingsError) as raised:
        Stack.load(settings, "123456789012")
    message = str(raised.value)
    assert "lake.bucket" in message and "65 characters; AWS allows 3-63" in message
    assert "SALES_CDC_PREFIX" in message
    # IAM role names (64) and Lambda names (64) are within limits at this length.
    assert "roles." not in message and "transform.function_name" not in message
    short = load_settings(
        {"SALES_CDC_ENV": "aws", "AWS_REGION": "ap-southeast-2", "SALES_CDC_PREFIX": "a" * 30}
    )
    assert len(Stack.load(short, "123456789012").bucket) == 63


def test_a_long_role_name_is_named(tmp_path, monkeypatch):
    infra = _infra(
        tmp_path,
        lambda t: t.replace('  pipe: "{prefix}-pipe-role"', '  pipe: "{prefix}-' + "x" * 60 + '"'),
    )
    monkeypatch.setenv("SALES_CDC_INFRA_DIR", str(infra))
    with pytest.raises(SettingsError, match=r"roles\.pipe gives .* IAM allows 64"):
        Stack.load(load_settings({}), "123456789012")


def test_the_code_location_fails_at_load_naming_the_broken_file(tmp_path):
    infra = _infra(tmp_path, lambda t: t.replace("  raw_prefix: raw/orders_cdc/\n", ""))
    result = subprocess.run(
        [sys.executable, "-c", "import sales_cdc.definitions"],
        env={"SALES_CDC_INFRA_DIR": str(infra), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"{infra / 'stack.yaml'}" in result.stderr
    assert "lake.raw_prefix: missing" in result.stderr


def test_a_missing_section_is_named(tmp_path):
    def edit(text: str) -> str:
        start = text.index("teardown:\n")
        end = text.index("environments:\n")
        return text[:start] + text[end:]

    path = _infra(tmp_path, edit) / "stack.yaml"
    with pytest.raises(SettingsError, match=r"stack\.yaml: teardown: missing \(required\)"):
        load_declaration("local", path)
