import threading

import botocore.loaders
import botocore.session
import pytest

from sales_cdc.resources.aws import AwsResource


def test_sessions_share_the_parsed_service_models(monkeypatch: pytest.MonkeyPatch):
    parsed: list[str] = []
    original = botocore.loaders.JSONFileLoader.load_file

    def load_file(self, file_path):
        parsed.append(file_path)
        return original(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
    # Three resources (a run builds one per resource), each with a session of its own: a service
    # the rest of the suite never uses has its model parsed once, not once per session.
    for _ in range(3):
        aws = AwsResource(
            env="local", prefix="t", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
        )
        assert aws.client("codeartifact").meta.service_model.service_name == "codeartifact"
    models = [path for path in parsed if path.endswith("/codeartifact/2018-09-22/service-2")]
    assert len(models) == 1


def test_resources_built_per_tick_reuse_their_threads_session(monkeypatch: pytest.MonkeyPatch):
    created: list[int] = []
    original = botocore.session.Session.__init__

    def init(self, *args, **kwargs):
        created.append(threading.get_ident())
        original(self, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "__init__", init)

    def tick() -> None:
        # Dagster builds a sensor's resources anew on every tick.
        aws = AwsResource(
            env="local", prefix="t", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
        )
        aws.client("s3")
        aws.client("sts")

    for _ in range(3):
        tick()
    thread = threading.Thread(target=tick)
    thread.start()
    thread.join()
    # At most one session per thread (none here if an earlier test made this thread's); another
    # thread gets one of its own, as boto3 sessions are not thread-safe.
    assert created.count(threading.get_ident()) <= 1
    assert created.count(thread.ident) == 1
