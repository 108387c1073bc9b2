import pytest

from sales_cdc.settings import DEFAULT_EMULATOR_ENDPOINT, SettingsError, load_settings


def test_defaults_are_the_local_embedded_stack():
    settings = load_settings({})
    assert settings.env == "local"
    assert settings.prefix == "sales-cdc"
    assert settings.region == "us-east-1"
    assert settings.endpoint_url == DEFAULT_EMULATOR_ENDPOINT


def test_region_and_endpoint_come_from_the_usual_aws_variables():
    settings = load_settings(
        {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:4999"}
    )
    assert settings.region == "eu-west-1"
    assert settings.endpoint_url == "http://127.0.0.1:4999"
    assert load_settings({"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "x"}).region == (
        "eu-central-1"
    )


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"SALES_CDC_ENV": "prod"}, ["SALES_CDC_ENV", "'prod'", "local", "aws"]),
        ({"SALES_CDC_PREFIX": "Sales_CDC"}, ["SALES_CDC_PREFIX", "'Sales_CDC'", "lowercase"]),
        ({"SALES_CDC_PREFIX": "x"}, ["SALES_CDC_PREFIX", "3-32"]),
        ({"SALES_CDC_ENV": "aws"}, ["AWS_REGION", "export AWS_REGION"]),
        ({"AWS_REGION": "mars-1"}, ["AWS_REGION", "'mars-1'"]),
        (
            {"AWS_ENDPOINT_URL": "https://dynamodb.us-east-1.amazonaws.com"},
            ["AWS_ENDPOINT_URL", "emulator", "SALES_CDC_ENV=aws"],
        ),
        (
            {"SALES_CDC_ENV": "aws", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "nope"},
            ["AWS_ENDPOINT_URL"],
        ),
    ],
)
def test_bad_settings_name_the_setting_the_value_and_the_fix(environ, names):
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    for name in names:
        assert name in str(raised.value)


def test_aws_environment_keeps_an_explicit_endpoint():
    settings = load_settings(
        {
            "SALES_CDC_ENV": "aws",
            "AWS_REGION": "us-west-2",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        }
    )
    assert (settings.env, settings.region, settings.endpoint_url) == (
        "aws",
        "us-west-2",
        "http://127.0.0.1:1",
    )


def test_code_location_fails_at_start_up_with_the_settings_message(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import sales_cdc.definitions"],
        env={"SALES_CDC_ENV": "staging", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "SALES_CDC_ENV='staging' is not a known environment" in result.stderr


def test_an_empty_prefix_is_an_error_not_the_default():
    with pytest.raises(SettingsError, match="SALES_CDC_PREFIX is set but empty"):
        load_settings({"SALES_CDC_PREFIX": "  "})
